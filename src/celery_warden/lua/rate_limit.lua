-- Fleet-wide rate limits: GCRA (the "virtual scheduling" form of a token bucket of size 1,
-- which is what Celery's per-worker rate_limit is), with reservation of the next free slot.
--
-- KEYS[i]   one key per limit that applies (task name, queue): the theoretical arrival time
--           (TAT, integer microseconds of the Redis clock) of the next call that may start
-- ARGV[1]   longest wait that may be reserved (microseconds)
-- ARGV[i+1] emission interval of KEYS[i] (microseconds: period / amount)
-- Returns {reserved 0/1, wait in microseconds}. The slot is the earliest time every limit
-- allows; when it is within ARGV[1] every TAT moves past it (the caller now owns that slot and
-- starts at it), otherwise nothing changes and the caller asks again after the longest wait.
-- All limits are taken together or not at all, so a task never spends one limit's slot while
-- another limit refuses it.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local slot = now
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat > slot then slot = tat end
end
local wait = slot - now
if wait > tonumber(ARGV[1]) then
  return {0, wait}
end
for i, key in ipairs(KEYS) do
  local nxt = slot + tonumber(ARGV[i + 1])
  redis.call('SET', key, string.format('%d', nxt), 'PX', math.floor((nxt - now) / 1000) + 1000)
end
return {1, wait}
