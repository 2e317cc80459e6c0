-- Store a DLQ entry, or update the entry of a requeued task that failed again. One step: a key
-- that holds something other than a hash is refused before anything is written (a MULTI
-- would still apply the index writes and leave ids that point at no entry), and counters
-- another writer left unreadable restart instead of failing the write halfway.
-- KEYS: entry, dlq, ready, claims, stats
-- ARGV: id, score (last failure), ready (1/0), ttl, reason, first_failed, field, value, ...
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'hash' and t ~= 'none' then
  return redis.error_reply('WRONGTYPE the DLQ entry key holds a ' .. t .. ', not a hash')
end
local function finite(v)
  local n = tonumber(v or '')
  return n and n == n and n ~= math.huge and n ~= -math.huge
end
if not finite(redis.call('HGET', KEYS[1], 'first_failed')) then
  redis.call('HSET', KEYS[1], 'first_failed', ARGV[6])
end
-- The same failure written twice (a write that timed out on the task's path but reached Redis,
-- then delivered again from the spool) carries the same last_failed: it is not counted again.
local repeat_write = redis.call('HGET', KEYS[1], 'last_failed') == ARGV[2]
local failures = redis.call('HGET', KEYS[1], 'failures')
if failures and #failures < 16 and string.match(failures, '^%d+$') then
  failures = tonumber(failures) + (repeat_write and 0 or 1)
else
  failures = 1
end
redis.call('HSET', KEYS[1], 'failures', string.format('%d', failures), unpack(ARGV, 7))
redis.call('HDEL', KEYS[1], 'claim_token')
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
else
  redis.call('ZREM', KEYS[3], ARGV[1])
end
if not repeat_write then
  redis.call('HINCRBY', KEYS[5], 'added', 1)
  redis.call('HINCRBY', KEYS[5], 'reason:' .. ARGV[5], 1)
end
return 1
