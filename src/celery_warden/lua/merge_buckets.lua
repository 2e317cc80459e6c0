-- Merge metric buckets (one task name's minutes and hours over a window) on the server and
-- return the merged bucket as a flat field/value list: counters, histogram slots and float
-- sums add, dmin/dmax compare. Read-only. Why in Redis: a page of the task-types list needs
-- each shown row's histograms (50 names x 61 minute buckets of ~40 fields); merging here sends
-- ~40 fields per row instead of ~2,500, and the server's Python does not parse them.
-- KEYS = the buckets; ARGV = fields whose sum per bucket is returned as well (a sparkline:
-- finished per minute). Reply: {merged field/value list, {sum of ARGV fields per key}}.
local acc, order, per = {}, {}, {}
local counted = {}
for _, f in ipairs(ARGV) do counted[f] = true end
local lo, hi
for i = 1, #KEYS do
  local flat = redis.call('HGETALL', KEYS[i])
  local n = 0
  for j = 1, #flat, 2 do
    local k, v = flat[j], tonumber(flat[j + 1])
    if counted[k] then n = n + v end
    if k == 'dmin' then
      if lo == nil or v < lo then lo = v end
    elseif k == 'dmax' then
      if hi == nil or v > hi then hi = v end
    else
      if acc[k] == nil then order[#order + 1] = k; acc[k] = 0 end
      acc[k] = acc[k] + v
    end
  end
  per[i] = n
end
local out = {}
for _, k in ipairs(order) do
  out[#out + 1] = k
  out[#out + 1] = string.format('%.17g', acc[k])
end
if lo ~= nil then
  out[#out + 1] = 'dmin'; out[#out + 1] = string.format('%.17g', lo)
  out[#out + 1] = 'dmax'; out[#out + 1] = string.format('%.17g', hi)
end
return {out, per}
