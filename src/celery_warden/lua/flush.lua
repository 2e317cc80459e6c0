-- Apply one chunk of a flusher batch atomically: task records, metric buckets, indexes,
-- heartbeats, error groups, counters. Returns the number of task records, or -1 when this
-- chunk was applied before (its writer's high-water mark is at or past its number: a retry
-- after a lost reply or a partly applied batch must not add the counters twice).
-- ARGV[1] = MessagePack map with everything but the task records (it holds no nil: an absent
-- value is sent as '' or left out, since a nil would vanish from a Lua table); ARGV[2] = now
-- (epoch s);
-- ARGV[3] = the task records as one MessagePack array (cmsgpack decodes it far faster than
-- cjson, and one argument avoids per-field protocol overhead), each record a flat array:
--   key, task id, update time, seq, rank, #static pairs, static k/v..., attempt k/v...
-- Values arrive as strings so epoch timestamps keep their microseconds.
local p = cmsgpack.unpack(ARGV[1])
local now = tonumber(ARGV[2])
local applied = tonumber(redis.call('GET', p.writer)) or 0
if p.seq <= applied then return -1 end
redis.call('SET', p.writer, p.seq, 'EX', p.writer_ttl)
local records = {}
if ARGV[3] ~= '' then records = cmsgpack.unpack(ARGV[3]) end

-- Task records. A record's attempt fields (state, times, error, retries) are written only when
-- the incoming (seq, rank) is not older than the stored one (seq orders deliveries: retries *
-- 1000 + deferrals; rank orders states within one delivery), so writes from the publisher,
-- the worker main process and pool children can arrive in any order.
-- Search indexes (read/task_search.py): every write also puts the id, at the same score as in
-- P:recent, in its name's index, in its id bucket (ids whose first 4 characters are lowercase
-- hex digits: one bucket per 4 digits, so an id prefix is a merge of 1 to 256 small sorted
-- sets) and in its state's index when that state is indexed; a record that moves state leaves
-- the old state's index here. Any other id enters the '~' bucket once, at score 0: that one
-- is read by ZRANGEBYLEX (a custom id's prefix), not by score.
-- Index writes are grouped per key and sent once per key after the loop (one ZADD of every
-- (score, id) pair a name's index gains in this chunk, one ZREM per state left): a call from
-- Lua costs Redis more than the sorted-set work of one member, and a chunk's tasks share a few
-- names and states. Grouping keeps the meaning: one record per task id per chunk, and the key a
-- record enters is never the one it leaves.
local recent = {}
local adds, rems = {}, {}
local function group(t, key, a, b)
  local l = t[key]
  if l == nil then l = {}; t[key] = l end
  l[#l + 1] = a
  if b ~= nil then l[#l + 1] = b end
end
local ix_name, ix_state, ix_id = p.ix[1], p.ix[2], p.ix[3]
local ix_states = p.ix_states
local ix_lex = ix_id .. '~'
local function id_bucket(id)
  local head = string.sub(id, 1, 4)
  if #head == 4 and not string.find(head, '[^0-9a-f]') then return ix_id .. head end
  return ix_lex
end
-- A task's retry history (a static field, the whole list so far, written at each retry by the
-- process that ran that attempt) is last-writer-wins across processes: attempt 0's list, flushed
-- by one pool child after attempt 1's by another, replaced the longer one. The list whose last
-- entry has the higher attempt number is kept.
local function last_attempt(text)
  local ok, list = pcall(cjson.decode, text)
  if ok and type(list) == 'table' and #list > 0 and type(list[#list]) == 'table' then
    return tonumber(list[#list].attempt) or -1
  end
  return -1
end
for _, r in ipairs(records) do
  local key, id, ts, seq, rank = r[1], r[2], r[3], r[4], r[5]
  local static_end = 6 + 2 * r[6]
  local apply = false
  local cur = redis.call('HMGET', key, 'seq', 'rank', 'state', 'name')
  if rank > 0 then
    local cseq = tonumber(cur[1]) or -1
    local crank = tonumber(cur[2]) or -1
    if seq > cseq or (seq == cseq and rank >= crank) then
      apply = true
      if seq > cseq and cseq >= 0 then
        redis.call('HDEL', key, 'finished', 'runtime', 'exc_type', 'exc_msg', 'started',
                   'received', 'wait', 'reason')
      end
    end
  end
  local state, name = cur[3], cur[4]
  for i = 7, static_end - 1, 2 do
    if r[i] == 'name' then
      name = r[i + 1]
    elseif r[i] == 'history' then
      local stored = redis.call('HGET', key, 'history')
      if stored and last_attempt(stored) > last_attempt(r[i + 1]) then r[i + 1] = stored end
    end
  end
  if apply then
    redis.call('HSET', key, 'seq', seq, 'rank', rank, unpack(r, 7, #r))
    for i = static_end + 1, #r - 1, 2 do
      if r[i] == 'state' then state = r[i + 1] end
    end
  elseif static_end > 6 then
    redis.call('HSET', key, unpack(r, 7, static_end))
  end
  redis.call('EXPIRE', key, p.task_ttl)
  recent[#recent + 1] = ts
  recent[#recent + 1] = id
  if name and name ~= '' then group(adds, ix_name .. name, ts, id) end
  if state and ix_states[state] then group(adds, ix_state .. state, ts, id) end
  if cur[3] and cur[3] ~= state and ix_states[cur[3]] then group(rems, ix_state .. cur[3], id) end
  local bucket = id_bucket(id)
  if bucket ~= ix_lex then
    group(adds, bucket, ts, id)
  elseif not cur[4] then
    group(adds, bucket, 0, id)
  end
end
for key, l in pairs(adds) do
  for i = 1, #l, 2000 do redis.call('ZADD', key, unpack(l, i, math.min(i + 1999, #l))) end
end
for key, l in pairs(rems) do
  for i = 1, #l, 1000 do redis.call('ZREM', key, unpack(l, i, math.min(i + 999, #l))) end
end
if #recent > 0 then
  for i = 1, #recent, 2000 do
    redis.call('ZADD', p.recent, unpack(recent, i, math.min(i + 1999, #recent)))
  end
  -- Past the task TTL an id leaves P:recent and its id bucket (the name and state indexes are
  -- trimmed by age by the retention sweep, lua/index_trim.lua).
  local old = redis.call('ZRANGEBYSCORE', p.recent, '-inf', tostring(now - p.task_ttl),
                         'LIMIT', 0, 1000)
  if #old > 0 then
    redis.call('ZREM', p.recent, unpack(old))
    for _, id in ipairs(old) do redis.call('ZREM', id_bucket(id), id) end
  end
end

-- 10-minute blocks (record/fold.py) are complete from P:blocks:since on: the first chunk that
-- writes buckets sets it to the start of the block after the current one (that block may hold
-- minutes an older version wrote without a block), or to 0 when the names index does not exist
-- yet (nothing wrote buckets before: every block is complete). Set once, never moved.
if p.blocks and #p.buckets > 0 and redis.call('EXISTS', p.blocks[1]) == 0 then
  local since, width = 0, p.blocks[3]
  if redis.call('EXISTS', p.blocks[2]) == 1 then since = (math.floor(now / width) + 1) * width end
  redis.call('SET', p.blocks[1], string.format('%d', since))
end

-- Metric buckets: counters add, float sums add, min/max compare. Six buckets per name and
-- minute since the 10-minute blocks, so each costs as few calls as it can: one HMGET and at most
-- one HSET for min/max, and no EXPIRE when the bucket already held a dmin (the write that set it
-- set its TTL too: a bucket's TTL runs from its first timed write, no longer from its last).
for _, b in ipairs(p.buckets) do
  local key = b[1]
  for k, v in pairs(b[3]) do redis.call('HINCRBY', key, k, v) end
  for k, v in pairs(b[4]) do redis.call('HINCRBYFLOAT', key, k, v) end
  local lo
  if b[5] ~= '' then
    local cur = redis.call('HMGET', key, 'dmin', 'dmax')
    local hi
    lo, hi = tonumber(cur[1]), tonumber(cur[2])
    local lower = lo == nil or tonumber(b[5]) < lo
    local higher = hi == nil or tonumber(b[6]) > hi
    if lower and higher then redis.call('HSET', key, 'dmin', b[5], 'dmax', b[6])
    elseif lower then redis.call('HSET', key, 'dmin', b[5])
    elseif higher then redis.call('HSET', key, 'dmax', b[6]) end
  end
  if lo == nil then redis.call('EXPIRE', key, b[2]) end
end

-- Cross-name summaries (record/fold.py): one field per task name, its counters as a small JSON
-- object added in place (one field per name keeps a big hash small; cjson, in C, costs about
-- half of a parse with string patterns). Numbers keep 14 significant digits: counts are exact,
-- a duration sum is rounded at 1e-14.
for _, s in ipairs(p.summaries) do
  local key = s[1]
  for name, inc in pairs(s[3]) do
    local cur = redis.call('HGET', key, name)
    if cur then
      local t = cjson.decode(cur)
      for k, v in pairs(inc) do t[k] = (t[k] or 0) + v end
      inc = t
    end
    redis.call('HSET', key, name, cjson.encode(inc))
  end
  redis.call('EXPIRE', key, s[2])
end

-- Indexes of names and queues seen (score = last seen).
for _, pair in ipairs(p.index) do
  local key, members = pair[1], pair[2]
  local zargs = {}
  for _, m in ipairs(members) do zargs[#zargs + 1] = ARGV[2]; zargs[#zargs + 1] = m end
  if #zargs > 0 then redis.call('ZADD', key, unpack(zargs)) end
end

-- Worker heartbeats.
for _, w in ipairs(p.workers) do
  local key, fields, host = w[1], w[2], w[3]
  local args = {}
  for k, v in pairs(fields) do args[#args + 1] = k; args[#args + 1] = v end
  redis.call('HSET', key, unpack(args))
  redis.call('EXPIRE', key, p.worker_ttl)
  redis.call('ZADD', p.workers_key, fields['last_seen'], host)
end

-- Error groups: counts add, the first sample stays, recent task ids are capped.
for _, e in ipairs(p.errors) do
  local key, tkey, fp = e[1], e[2], e[3]
  redis.call('HINCRBY', key, 'count', e[4])
  redis.call('HSETNX', key, 'first_seen', e[5])
  redis.call('HSET', key, 'last_seen', e[6])
  for k, v in pairs(e[7]) do redis.call('HSETNX', key, k, v) end
  for n, c in pairs(e[8]) do redis.call('HINCRBY', key, 'name:' .. n, c) end
  if #e[9] > 0 then
    redis.call('LPUSH', tkey, unpack(e[9]))
    redis.call('LTRIM', tkey, 0, 19)
    redis.call('EXPIRE', tkey, e[11])
  end
  for _, mc in ipairs(e[10]) do
    redis.call('INCRBY', mc[1], mc[2])
    redis.call('EXPIRE', mc[1], e[11])
  end
  redis.call('EXPIRE', key, e[11])
  redis.call('ZADD', p.errors_key, e[6], fp)
end

-- The error group index keeps groups seen within the retention, at most errors_cap of them
-- (the least recently seen go first, with their sample hash and recent-task list; their
-- per-minute counters expire by TTL).
if #p.errors > 0 then
  local gone = redis.call('ZRANGEBYSCORE', p.errors_key, '-inf', now - p.errors_retention)
  local over = redis.call('ZCARD', p.errors_key) - #gone - p.errors_cap
  if over > 0 then
    local oldest = redis.call('ZRANGE', p.errors_key, #gone, #gone + over - 1)
    for _, fp in ipairs(oldest) do gone[#gone + 1] = fp end
  end
  for _, fp in ipairs(gone) do
    redis.call('ZREM', p.errors_key, fp)
    redis.call('DEL', p.errors_group_prefix .. fp, p.errors_tasks_prefix .. fp)
  end
end

-- Cumulative totals for Prometheus (record/totals.py): no TTL, never decrease. Capped per
-- task name (names, label sets, exception names); past a cap the capped labels read _other
-- (the total per event stays exact) and the overflow is counted.
-- A histogram is one field per label set in p.totals_packed (see pack_add below); hkey is the
-- earlier layout (a field per bucket), only probed here for a set not yet moved out of it.
if p.totals then
  local ckey, hkey, meta = p.totals_counters, p.totals_hists, p.totals_meta
  local pkey, slots = p.totals_packed, p.totals_slots
  local cap_names, cap_sets, cap_exc = p.caps[1], p.caps[2], p.caps[3]
  local SEP = '\31'
  local overflow = 0
  local function admit_name(name)
    if name == '_other' or redis.call('HEXISTS', meta, 'n:' .. name) == 1 then return true end
    if (tonumber(redis.call('HGET', meta, 'names')) or 0) >= cap_names then return false end
    redis.call('HINCRBY', meta, 'names', 1)
    redis.call('HSET', meta, 'n:' .. name, 0)
    return true
  end
  local function admit_exc(name, exc)
    if exc == '' or exc == '_other' then return true end
    local f = 'x:' .. name .. SEP .. exc
    if redis.call('HEXISTS', meta, f) == 1 then return true end
    if (tonumber(redis.call('HGET', meta, 'xn:' .. name)) or 0) >= cap_exc then return false end
    redis.call('HINCRBY', meta, 'xn:' .. name, 1)
    redis.call('HSET', meta, f, 1)
    return true
  end
  -- Whether a new label set fits under its name's cap (an existing one always does).
  local function admit_set(key, probe, name)
    if redis.call('HEXISTS', key, probe) == 1 then return true end
    if (tonumber(redis.call('HGET', meta, 'n:' .. name)) or 0) >= cap_sets then return false end
    redis.call('HINCRBY', meta, 'n:' .. name, 1)
    return true
  end
  for _, c in ipairs(p.totals.counters) do
    local event, name, host, queue, exc, v = c[1], c[2], c[3], c[4], c[5], c[6]
    local over = false
    if not admit_name(name) then
      name, host, queue, over = '_other', '_other', '_other', true
      if exc ~= '' then exc = '_other' end
    elseif not admit_exc(name, exc) then
      exc, over = '_other', true
    end
    local field = event .. SEP .. name .. SEP .. host .. SEP .. queue .. SEP .. exc
    if host ~= '_other' and not admit_set(ckey, field, name) then
      host, queue, over = '_other', '_other', true
      if exc ~= '' then exc = '_other' end
      field = event .. SEP .. name .. SEP .. host .. SEP .. queue .. SEP .. exc
    end
    redis.call('HINCRBY', ckey, field, v)
    if over then overflow = overflow + v end
  end
  -- One label set's histogram as stored: its cumulative bucket counts (the last is +Inf, the
  -- count) and then the sum, space-separated, in one field: a scrape reads one field per set
  -- instead of one per bucket. Adds this batch's per-bucket counts (slot index -> n) and sum.
  local function pack_add(cur, n, counts, sum)
    local v, j = {}, 0
    if cur then
      for x in string.gmatch(cur, '%S+') do j = j + 1; v[j] = tonumber(x) end
    end
    for i = 1, n + 1 do v[i] = v[i] or 0 end
    for slot, k in pairs(counts) do
      for i = tonumber(slot) + 1, n do v[i] = v[i] + k end
    end
    v[n + 1] = v[n + 1] + tonumber(sum)
    for i = 1, n do v[i] = string.format('%d', v[i]) end
    v[n + 1] = string.format('%.17g', v[n + 1])
    return table.concat(v, ' ', 1, n + 1)
  end
  for _, h in ipairs(p.totals.hists) do
    local metric, name, host, queue, sum, counts = h[1], h[2], h[3], h[4], h[5], h[6]
    local over = false
    if not admit_name(name) then name, host, queue, over = '_other', '_other', '_other', true end
    local field = metric .. SEP .. name .. SEP .. host .. SEP .. queue
    local cur = redis.call('HGET', pkey, field)
    if not cur and host ~= '_other' and not admit_set(hkey, field .. SEP .. 's', name) then
      host, queue, over = '_other', '_other', true
      field = metric .. SEP .. name .. SEP .. host .. SEP .. queue
      cur = redis.call('HGET', pkey, field)
    end
    redis.call('HSET', pkey, field, pack_add(cur, slots[metric], counts, sum))
    if over then
      for _, k in pairs(counts) do overflow = overflow + k end
    end
  end
  if overflow > 0 then redis.call('HINCRBY', meta, 'overflow', overflow) end
end

-- Process-level counters (dropped records and the like).
for _, s in ipairs(p.stats) do
  redis.call('HINCRBY', s[1], s[2], s[3])
end
return #records
