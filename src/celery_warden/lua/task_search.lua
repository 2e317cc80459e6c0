-- Walk the recent-task index newest first and return the ids whose record matches the filters,
-- examining at most `budget` records (read-only; one round trip instead of one HGETALL per
-- record examined). See read/task_search.py.
-- KEYS[1] = P:recent
-- ARGV: task key prefix, top score ('+inf' or a number), floor score ('-inf' or a number),
--       cursor score ('' = none), cursor id, limit, budget, filters (JSON: state, name, queue,
--       worker, id_prefix, q; absent = any)
-- Returns {examined, exhausted (0/1), last score, last id, id1, score1, id2, score2, ...}
local prefix, top, floor = ARGV[1], ARGV[2], ARGV[3]
local after_score, after_id = tonumber(ARGV[4]), ARGV[5]
local limit, budget = tonumber(ARGV[6]), tonumber(ARGV[7])
local f = cjson.decode(ARGV[8])
local needle = f.q and string.lower(f.q) or nil
local batch, offset, examined = 250, 0, 0
local exhausted = 0
local last_score, last_id = '', ''
local out = {}

local function matches(id, r)
  if r[1] == false and r[2] == false then return false end  -- expired record
  if f.id_prefix and string.sub(id, 1, #f.id_prefix) ~= f.id_prefix then return false end
  if f.state and (r[1] or 'PENDING') ~= f.state then return false end
  if f.name and r[2] ~= f.name then return false end
  if f.queue and r[3] ~= f.queue then return false end
  if f.worker and r[4] ~= f.worker then return false end
  if needle then
    local hay = string.lower((r[5] or '') .. ' ' .. (r[6] or '') .. ' ' .. (r[7] or '') ..
                             ' ' .. (r[8] or ''))
    if not string.find(hay, needle, 1, true) then return false end
  end
  return true
end

while #out / 2 < limit and examined < budget do
  local rows = redis.call('ZREVRANGEBYSCORE', KEYS[1], top, floor, 'WITHSCORES', 'LIMIT',
                          offset, batch)
  if #rows == 0 then exhausted = 1; break end
  offset = offset + #rows / 2
  for i = 1, #rows, 2 do
    local id, score = rows[i], rows[i + 1]
    local s = tonumber(score)
    if not (after_score and (s > after_score or (s == after_score and id >= after_id))) then
      examined = examined + 1
      last_score, last_id = score, id
      local r = redis.call('HMGET', prefix .. id, 'state', 'name', 'queue', 'worker',
                           'exc_type', 'exc_msg', 'args', 'kwargs')
      if matches(id, r) then
        out[#out + 1] = id
        out[#out + 1] = score
      end
      if #out / 2 >= limit or examined >= budget then break end
    end
  end
end
return {examined, exhausted, last_score, last_id, unpack(out)}
