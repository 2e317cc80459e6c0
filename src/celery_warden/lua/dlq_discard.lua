-- Remove a DLQ entry for good: its key (whatever it holds) and its id in every index.
-- Counted under the given stat if there was an entry, as vanished if only ids were left.
-- KEYS: entry, dlq, ready, claims, stats ; ARGV: id, stat
-- Returns 1 if there was an entry, else 0.
local existed = redis.call('DEL', KEYS[1])
local n = redis.call('ZREM', KEYS[2], ARGV[1]) + redis.call('ZREM', KEYS[3], ARGV[1])
  + redis.call('ZREM', KEYS[4], ARGV[1])
if existed == 1 then
  redis.call('HINCRBY', KEYS[5], ARGV[2], 1)
elseif n > 0 then
  redis.call('HINCRBY', KEYS[5], 'vanished', 1)
end
return existed
