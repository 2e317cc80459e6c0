-- Find the task ids whose record matches the filters, newest first, examining at most `budget`
-- records (read-only; one round trip instead of one HGETALL per record examined). Two ways in
-- (read/task_search.py picks one):
--   walk: KEYS[1] is one index scored by last update (P:recent, a name's or a state's index),
--         walked newest first from the cursor;
--   ids:  KEYS[1] is P:recent, KEYS[2] the index to walk instead and KEYS[3..] the id buckets
--         that can hold the prefix: the ids matching it are taken by ZRANGEBYLEX, given their
--         P:recent score, sorted newest first. When there are several buckets and P:recent
--         holds more than ARGV[10] x 16^#prefix ids (the share of uuid4 ids a prefix matches),
--         KEYS[2] is walked instead: in a big store the walk finds a page sooner. (Decided
--         here rather than by a ZCARD from the caller: one round trip per page less.)
-- Every filter is checked on the record itself either way, so an index entry left behind (a
-- record that changed state, or expired) is only skipped.
-- ARGV: task key prefix, top score ('+inf' or a number), floor score ('-inf' or a number),
--       cursor score ('' = none), cursor id, limit, budget, filters (JSON: state, name, queue,
--       worker, id_prefix, q; absent = any), mode ('walk' or 'ids'), most expected prefix
--       matches (ids), then the record fields to return for each match
-- Returns {examined, exhausted (0/1), last score, last id, then per match: id, score and the
-- values of the requested fields (nil where the record has none)}: the page's records come
-- back with the search. (Read by the caller instead, with 50 pipelined HMGETs, they cost an
-- asyncio client ~1.5 ms of CPU per page against ~0.4 ms for this one reply.)
local prefix, top, floor = ARGV[1], ARGV[2], ARGV[3]
local after_score, after_id = tonumber(ARGV[4]), ARGV[5]
local limit, budget = tonumber(ARGV[6]), tonumber(ARGV[7])
local f = cjson.decode(ARGV[8])
local mode, max_matches = ARGV[9], tonumber(ARGV[10])
local needle = f.q and string.lower(f.q) or nil
local examined, exhausted, matched = 0, 0, 0
local last_score, last_id = '', ''
local out = {}
local fields = {unpack(ARGV, 11)}
-- Where most records examined match (no filter beyond what the walked index or the id buckets
-- imply), a record is read once, for the fields returned, and the filters are checked on
-- those. Otherwise it is read for what the filters need (its state and name also tell an
-- expired one), a match then for the fields returned: Lua copies every value it is handed
-- into a string of its own, so reading all of them for records that do not match made a
-- selective filter (state=FAILURE&queue=...) cost Redis up to twice as much.
local wanted = {'state', 'name'}
if f.queue then wanted[#wanted + 1] = 'queue' end
if f.worker then wanted[#wanted + 1] = 'worker' end
if needle then
  for _, field in ipairs({'exc_type', 'exc_msg', 'args', 'kwargs'}) do
    wanted[#wanted + 1] = field
  end
end
local at, at_field = {}, {}
for i, field in ipairs(wanted) do at[field] = i end
for i, field in ipairs(fields) do at_field[field] = i end
local once = not (f.queue or f.worker or needle or (f.state and f.name))
for _, field in ipairs(wanted) do once = once and at_field[field] ~= nil end

local function matches(id, r, at)
  local state, name = r[at.state], r[at.name]
  if state == false and name == false then return false end  -- expired record
  if f.id_prefix and string.sub(id, 1, #f.id_prefix) ~= f.id_prefix then return false end
  if f.state and (state or 'PENDING') ~= f.state then return false end
  if f.name and name ~= f.name then return false end
  if f.queue and r[at.queue] ~= f.queue then return false end
  if f.worker and r[at.worker] ~= f.worker then return false end
  if needle then
    local hay = string.lower((r[at.exc_type] or '') .. ' ' .. (r[at.exc_msg] or '') .. ' ' ..
                             (r[at.args] or '') .. ' ' .. (r[at.kwargs] or ''))
    if not string.find(hay, needle, 1, true) then return false end
  end
  return true
end

-- Whether an entry comes strictly after the cursor (ties on the score: lower ids come later).
local function after_cursor(s, id)
  return not (after_score and (s > after_score or (s == after_score and id >= after_id)))
end

-- Examine one entry; true when the page is full or the budget spent.
local function examine(id, score)
  examined = examined + 1
  last_score, last_id = score, id
  local key = prefix .. id
  local values
  if once then
    values = redis.call('HMGET', key, unpack(fields))
    if not matches(id, values, at_field) then values = nil end
  elseif matches(id, redis.call('HMGET', key, unpack(wanted)), at) then
    values = redis.call('HMGET', key, unpack(fields))
  end
  if values then
    matched = matched + 1
    out[#out + 1] = id
    out[#out + 1] = score
    for i = 1, #fields do out[#out + 1] = values[i] end
  end
  return matched >= limit or examined >= budget
end

local walk_key = KEYS[1]
if mode == 'ids' then
  walk_key = KEYS[2]
  if #KEYS > 3 and redis.call('ZCARD', KEYS[1]) / 16 ^ #f.id_prefix > max_matches then
    mode = 'walk'
  end
end

if mode == 'ids' then
  local hi = top == '+inf' and math.huge or tonumber(top)
  local lo = floor == '-inf' and -math.huge or tonumber(floor)
  local ids, n = {}, 0
  for i = 3, #KEYS do
    local got = redis.call('ZRANGEBYLEX', KEYS[i], '[' .. f.id_prefix, '[' .. f.id_prefix .. '\255')
    for _, id in ipairs(got) do n = n + 1; ids[n] = id end
  end
  -- The rows in range, as three columns (score, id, score as stored): no table per row.
  local score, ident, stored, rows = {}, {}, {}, 0
  for i = 1, n, 1000 do
    local part = {unpack(ids, i, math.min(i + 999, n))}
    local scores = redis.call('ZMSCORE', KEYS[1], unpack(part))
    for j, id in ipairs(part) do
      local raw = scores[j]
      local s = tonumber(raw)
      if s and s <= hi and s >= lo and (after_score == nil or after_cursor(s, id)) then
        rows = rows + 1
        score[rows], ident[rows], stored[rows] = s, id, raw
      end
    end
  end
  -- Newest first, sorted a page at a time: the scores alone (a numeric sort, no Lua comparator)
  -- give the lowest score of the next page's worth of rows, and only the rows from there up
  -- are sorted by score and id. (Sorting all ~250 rows of a 3-character prefix at 1,000,000
  -- records with the comparator cost Redis ~0.3 ms a page.)
  local asc = {}
  for k = 1, rows do asc[k] = score[k] end
  table.sort(asc)
  local newer = function(a, b)
    return score[a] > score[b] or (score[a] == score[b] and ident[a] > ident[b])
  end
  local left, above = rows, nil  -- rows not yet taken; the rows taken scored `above` or more
  exhausted = 1
  while left > 0 do
    local least = asc[math.max(1, left - math.max(limit - matched, 1) + 1)]
    local part = {}
    for k = 1, rows do
      local s = score[k]
      if s >= least and (above == nil or s < above) then part[#part + 1] = k end
    end
    if #part == 0 then break end
    left, above = left - #part, least
    table.sort(part, newer)
    for i, k in ipairs(part) do
      if examine(ident[k], stored[k]) then
        if i < #part or left > 0 then exhausted = 0 end
        return {examined, exhausted, last_score, last_id, unpack(out)}
      end
    end
  end
  return {examined, exhausted, last_score, last_id, unpack(out)}
end

-- Entries are fetched 250 at a time; without a filter the index does not imply (a name's or
-- a state's index walked for that name or state, P:recent for none) every entry matches, and
-- the first batch is what the page needs. (Not always small: each batch after the first
-- walks the offset again, which made a text search ~10 % dearer.)
local selective = f.queue or f.worker or f.id_prefix or needle
local batch, offset = selective and 250 or limit + 1, 0
while matched < limit and examined < budget do
  local rows = redis.call('ZREVRANGEBYSCORE', walk_key, top, floor, 'WITHSCORES', 'LIMIT',
                          offset, batch)
  if #rows == 0 then exhausted = 1; break end
  offset = offset + #rows / 2
  batch = 250
  for i = 1, #rows, 2 do
    local id, score = rows[i], rows[i + 1]
    if after_cursor(tonumber(score), id) and examine(id, score) then break end
  end
end
return {examined, exhausted, last_score, last_id, unpack(out)}
