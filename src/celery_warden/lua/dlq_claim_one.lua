-- Claim one DLQ entry for a manual requeue (a parked one only when allowed).
-- An id whose entry key is gone is removed from every index (counted as vanished) and a key
-- that holds no hash is left alone: neither is claimed, nothing is written under the key.
-- KEYS: entry, ready, claims, dlq, stats ; ARGV: id, token, deadline, allow parked (1/0)
-- Returns the status the entry had (so a failed requeue can restore it), or 0.
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'none' then
  local n = redis.call('ZREM', KEYS[4], ARGV[1]) + redis.call('ZREM', KEYS[2], ARGV[1])
    + redis.call('ZREM', KEYS[3], ARGV[1])
  if n > 0 then redis.call('HINCRBY', KEYS[5], 'vanished', 1) end
  return 0
end
if t ~= 'hash' then return 0 end
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'pending' and not (status == 'parked' and ARGV[4] == '1') then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[1], 'status', 'claimed', 'claim_token', ARGV[2])
return status
