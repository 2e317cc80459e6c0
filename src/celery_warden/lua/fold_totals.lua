-- Fold completed minutes' deferral counts into cumulative totals, exactly once.
-- KEYS[1] totals hash (fields: reason -> count, and '_through' = last minute folded)
-- ARGV[1] the '_through' value the caller read (or '' when absent)
-- ARGV[2] the new '_through' (the last minute the caller summed)
-- ARGV[3..] reason, count pairs summed over the minutes in between
-- Compare-and-set on '_through': when two `warden serve` replicas fold the same minutes, only
-- the first adds them; the other gets 0 and its sums are dropped.
local cur = redis.call('HGET', KEYS[1], '_through')
if (cur or '') ~= ARGV[1] then
  return 0
end
for i = 3, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], tonumber(ARGV[i + 1]))
end
redis.call('HSET', KEYS[1], '_through', ARGV[2])
return 1
