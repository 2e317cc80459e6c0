-- The tasks whose parent is ARGV[2], among the records updated since ARGV[3] (read-only; at
-- most ARGV[4] records examined, at most ARGV[5] children returned). See read/task_detail.py.
-- KEYS[1] = P:recent; ARGV[1] = task key prefix
-- Returns {complete (0/1), child id, ...}: complete = every newer record was examined.
local prefix, parent = ARGV[1], ARGV[2]
local scan, most = tonumber(ARGV[4]), tonumber(ARGV[5])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[3], '+inf', 'LIMIT', 0, scan)
local out = {#ids < scan and 1 or 0}
for _, id in ipairs(ids) do
  if id ~= parent and redis.call('HGET', prefix .. id, 'parent_id') == parent then
    out[#out + 1] = id
    if #out - 1 >= most then out[1] = 0; break end
  end
end
return out
