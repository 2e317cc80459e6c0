-- Apply one evaluation's outcome, fenced by the lease: only the evaluator that holds the lease
-- may change alert states and queue notifications, so two evaluators never notify one
-- transition twice (one that lost its lease mid-evaluation writes nothing).
-- KEYS: lease, state, history, outbox
-- ARGV[1] = owner token, ARGV[2] = lease ttl (ms), ARGV[3] = history bound,
-- ARGV[4] = JSON {"write": {fp: state json}, "delete": [fp], "history": [json], "notify": [json]}
-- Returns 1 when applied, 0 when the lease is not ours.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local doc = cjson.decode(ARGV[4])
for fp, state in pairs(doc.write) do redis.call('HSET', KEYS[2], fp, state) end
for _, fp in ipairs(doc.delete) do redis.call('HDEL', KEYS[2], fp) end
for _, entry in ipairs(doc.history) do redis.call('LPUSH', KEYS[3], entry) end
if #doc.history > 0 then redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[3]) - 1) end
for _, entry in ipairs(doc.notify) do redis.call('LPUSH', KEYS[4], entry) end
return 1
