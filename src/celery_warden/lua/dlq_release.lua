-- Give a claimed DLQ entry back (its re-publish failed): ready again at a given time, or
-- parked again. Only with this processor's claim token, and never for an entry whose key is
-- gone (discarded meanwhile): that one's ids are removed from every index instead.
-- KEYS: entry, ready, claims, dlq, stats ; ARGV: id, token, parked (1/0), ready at
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'hash' then
  if t == 'none' then
    local n = redis.call('ZREM', KEYS[4], ARGV[1]) + redis.call('ZREM', KEYS[2], ARGV[1])
      + redis.call('ZREM', KEYS[3], ARGV[1])
    if n > 0 then redis.call('HINCRBY', KEYS[5], 'vanished', 1) end
  end
  return 0
end
if redis.call('HGET', KEYS[1], 'claim_token') ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[1], 'claim_token')
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'status', 'parked')
else
  redis.call('HSET', KEYS[1], 'status', 'pending')
  redis.call('ZADD', KEYS[2], tonumber(ARGV[4]), ARGV[1])
end
return 1
