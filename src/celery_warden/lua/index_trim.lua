-- Trim the task indexes by age (record/retention.py runs it once per sweep, record/prune.py in
-- housekeeping): ids updated before the cutoff leave P:recent with their id bucket, and every
-- name index (names from P:names) and state index. The flush trims P:recent too, but only the
-- name and state indexes of what it writes would be trimmed there, and a name that stops being
-- written would keep its index: this sweep reaches them all.
-- KEYS: 1 recent zset, 2 names zset
-- ARGV: 1 cutoff (epoch s), 2 name index prefix, 3 state index prefix, 4 id bucket prefix,
--       5 most ids to take from P:recent, 6.. indexed states
-- Returns {ids trimmed from P:recent, entries trimmed from name and state indexes}
local cutoff = ARGV[1]
local ix_name, ix_state, ix_id = ARGV[2], ARGV[3], ARGV[4]
local most = tonumber(ARGV[5])

local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff, 'LIMIT', 0, most)
for i = 1, #old, 500 do
  redis.call('ZREM', KEYS[1], unpack(old, i, math.min(i + 499, #old)))
end
for _, id in ipairs(old) do
  local head = string.sub(id, 1, 4)
  if #head < 4 or string.find(head, '[^0-9a-f]') then head = '~' end
  redis.call('ZREM', ix_id .. head, id)
end
local trimmed = 0
for _, name in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  trimmed = trimmed + redis.call('ZREMRANGEBYSCORE', ix_name .. name, '-inf', cutoff)
end
for i = 6, #ARGV do
  trimmed = trimmed + redis.call('ZREMRANGEBYSCORE', ix_state .. ARGV[i], '-inf', cutoff)
end
return {#old, trimmed}
