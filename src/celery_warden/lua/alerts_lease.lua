-- The fleet's one alert evaluator: acquire, renew or release the lease.
-- KEYS[1] = lease ; ARGV[1] = owner token, ARGV[2] = ttl (ms), ARGV[3] = 'hold' | 'release'
-- hold: 1 = renewed (we held it), 2 = acquired now (it was free), 0 = another owner holds it.
-- release: 1 when we held it and it is now free, else 0 (another owner's lease is untouched).
local current = redis.call('GET', KEYS[1])
if ARGV[3] == 'release' then
  if current == ARGV[1] then return redis.call('DEL', KEYS[1]) end
  return 0
end
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
