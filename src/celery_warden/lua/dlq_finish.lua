-- Finish a claimed DLQ entry, only if this processor's claim token still holds it.
-- An entry whose key is gone (discarded or expired meanwhile) is not written back: its ids are
-- removed from every index (counted as vanished if any was left) and the call answers 0.
-- KEYS: entry, dlq, claims, stats, ready ; ARGV: id, token, new status, stat field, extra json
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'hash' then
  if t == 'none' then
    local n = redis.call('ZREM', KEYS[2], ARGV[1]) + redis.call('ZREM', KEYS[3], ARGV[1])
      + redis.call('ZREM', KEYS[5], ARGV[1])
    if n > 0 then redis.call('HINCRBY', KEYS[4], 'vanished', 1) end
  end
  return 0
end
if redis.call('HGET', KEYS[1], 'claim_token') ~= ARGV[2] then return 0 end
if redis.call('HGET', KEYS[1], 'status') ~= 'claimed' then return 0 end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[1], 'claim_token')
redis.call('HSET', KEYS[1], 'status', ARGV[3])
local extra = cjson.decode(ARGV[5])
for k, v in pairs(extra) do redis.call('HSET', KEYS[1], k, v) end
if ARGV[3] == 'requeued' then redis.call('ZREM', KEYS[2], ARGV[1]) end
redis.call('HINCRBY', KEYS[4], ARGV[4], 1)
return 1
