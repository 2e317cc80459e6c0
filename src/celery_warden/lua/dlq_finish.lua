-- Finish a claimed DLQ entry, only if this processor's claim token still holds it.
-- KEYS: entry, dlq, claims, stats ; ARGV: id, token, new status, stat field, extra json
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
