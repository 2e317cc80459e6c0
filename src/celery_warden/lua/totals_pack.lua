-- Move histogram totals from the first layout (a field per bucket) into the packed one (a field
-- per label set), exactly once: a label set's fields are read and deleted in the same atomic
-- call, so concurrent scrapes, and recorders of the previous version still adding to the old
-- hash, never count a bucket twice or lose one (what they add after this call is moved by the
-- next).
-- KEYS[1] old hash: fields metric SEP name SEP host SEP queue SEP <bucket index>|s
-- KEYS[2] packed hash: field metric SEP name SEP host SEP queue -> cumulative counts, then sum
-- KEYS[3] the totals' cap bookkeeping (field 'n:' .. name = label sets counted for the name)
-- KEYS[4] set of the label sets moved so far (members: packed field names)
-- ARGV[1] JSON {metric: bucket slots}; ARGV[2..] fields of the old hash (one HSCAN page)
-- Each label set named by a field is moved whole (all its slots), once per call.
-- The cap: a previous-version recorder that adds to a set already moved finds no 's' field and
-- counts the set as new for its name (its flush script's admit_set); that count is given back
-- here when the set was moved before (KEYS[4]), so a long rolling upgrade with a scrape every
-- few seconds does not use up a name's label-set cap. (A set first written by a new recorder
-- and then by an old one before any move is counted twice: the cap binds one set early.)
-- A field this version cannot read (unknown metric or slot) was never shown by any reader; it
-- is deleted too, so the old hash empties and scrapes stop looking at it. Returns the number of
-- fields moved.
local slots = cjson.decode(ARGV[1])
local SEP = '\31'
local done = {}
local moved = 0
for i = 2, #ARGV do
  local f = ARGV[i]
  local set, slot = string.match(f, '^(.*)\31([^\31]*)$')
  local metric, name, host = nil, nil, nil
  if set then
    metric, name, host = string.match(set, '^([^\31]*)\31([^\31]*)\31([^\31]*)\31[^\31]*$')
  end
  local n = metric and slots[metric]
  local index = slot and tonumber(slot)
  if not (n and (slot == 's' or (index and index >= 0 and index < n and index % 1 == 0))) then
    redis.call('HDEL', KEYS[1], f)
  elseif not done[set] then
    done[set] = true
    local names = {}
    for j = 0, n - 1 do names[j + 1] = set .. SEP .. j end
    names[n + 1] = set .. SEP .. 's'
    local old = redis.call('HMGET', KEYS[1], unpack(names))
    local any = false
    for j = 1, n + 1 do
      if old[j] then any = true end
    end
    if any then
      redis.call('HDEL', KEYS[1], unpack(names))
      local cur = redis.call('HGET', KEYS[2], set)
      local v, j = {}, 0
      if cur then
        for x in string.gmatch(cur, '%S+') do j = j + 1; v[j] = tonumber(x) end
      end
      if old[n + 1] and redis.call('SADD', KEYS[4], set) == 0 and name ~= '_other'
          and host ~= '_other' then
        redis.call('HINCRBY', KEYS[3], 'n:' .. name, -1)
      end
      for k = 1, n + 1 do v[k] = v[k] or 0 end
      local running = 0
      for k = 1, n do
        if old[k] then
          running = running + tonumber(old[k])
          moved = moved + 1
        end
        v[k] = v[k] + running
      end
      if old[n + 1] then
        v[n + 1] = v[n + 1] + tonumber(old[n + 1])
        moved = moved + 1
      end
      for k = 1, n do v[k] = string.format('%d', v[k]) end
      v[n + 1] = string.format('%.17g', v[n + 1])
      redis.call('HSET', KEYS[2], set, table.concat(v, ' ', 1, n + 1))
    end
  end
end
return moved
