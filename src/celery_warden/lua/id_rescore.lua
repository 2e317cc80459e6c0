-- Give the id bucket entries an older version wrote (score 0: buckets were read by ZRANGEBYLEX
-- then) their P:recent score, the score every flush now writes, so an id prefix search merges
-- them in order; an entry whose id left P:recent (its record expired) is removed. One call
-- takes buckets in order from the shared progress counter (KEYS[2]) and moves it on, so several
-- sweepers split the work ('done' once every bucket was rescored): at most ARGV[2] buckets, and
-- none more once ARGV[3] entries were moved (~10 us of Redis each: a call stays ~5 ms). The '~'
-- bucket keeps score 0 (read by ZRANGEBYLEX still).
-- KEYS: 1 P:recent, 2 the progress counter
-- ARGV: 1 the id bucket key prefix, 2 most buckets per call, 3 most entries per call
-- Returns {entries rescored or removed, 1 when every bucket is done (0 otherwise)}.
local progress = redis.call('GET', KEYS[2])
if progress == 'done' then return {0, 1} end
local first = tonumber(progress) or 0
local last = math.min(first + tonumber(ARGV[2]), 65536) - 1
local most = tonumber(ARGV[3])
local moved = 0
for b = first, last do
  if moved >= most then last = b - 1; break end
  local key = ARGV[1] .. string.format('%04x', b)
  local ids = redis.call('ZRANGEBYSCORE', key, 0, 0)
  for i = 1, #ids, 1000 do
    local part = {unpack(ids, i, math.min(i + 999, #ids))}
    local scores = redis.call('ZMSCORE', KEYS[1], unpack(part))
    local add, gone = {}, {}
    for j, id in ipairs(part) do
      if scores[j] then
        add[#add + 1] = scores[j]
        add[#add + 1] = id
      else
        gone[#gone + 1] = id
      end
    end
    if #add > 0 then redis.call('ZADD', key, 'XX', unpack(add)) end
    if #gone > 0 then redis.call('ZREM', key, unpack(gone)) end
    moved = moved + #part
  end
end
if last >= 65535 then
  redis.call('SET', KEYS[2], 'done')
  return {moved, 1}
end
redis.call('SET', KEYS[2], last + 1)
return {moved, 0}
