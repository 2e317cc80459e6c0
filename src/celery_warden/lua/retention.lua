-- One step of the retention sweep (record/retention.py says why it is a sweep): classify the
-- task records updated since the cursor, apply the success policy, forget the index entries of
-- records that expired, and enforce the record cap, oldest plain successes first.
-- KEYS: 1 recent zset, 2 kept-successes zset (score = expiry time), 3 cursor, 4 stats hash
-- ARGV: 1 now, 2 grace s, 3 mode (all|recent|sample|none), 4 sample rate (0..1),
--       5 success TTL s, 6 task TTL s, 7 slow threshold s, 8 batch, 9 task key prefix,
--       10 most records to keep (0 = no cap), 11 most evictions in this step,
--       12 look-ahead s for expiring successes, 13 name index prefix, 14 state index prefix,
--       15 id bucket prefix
-- Every record the sweep deletes or forgets also leaves the search indexes (lua/flush.lua
-- writes them): its name's, its state's and its id bucket.
-- Returns {records classified, plain successes, removed, shortened, index entries forgotten,
--          evicted successes, evicted others, more to do (0/1)}
local recent, kept, cursor_key, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now = tonumber(ARGV[1])
local mode = ARGV[3]
local rate = tonumber(ARGV[4])
local success_ttl = tonumber(ARGV[5])
local task_ttl = tonumber(ARGV[6])
local slow = tonumber(ARGV[7])
local batch = tonumber(ARGV[8])
local prefix = ARGV[9]
local cap = tonumber(ARGV[10])
local max_evict = tonumber(ARGV[11])
local ahead = tonumber(ARGV[12])
local ix_name, ix_state, ix_id = ARGV[13], ARGV[14], ARGV[15]

-- Deterministic sample: every sweep (and every replica) takes the same decision for one id.
-- Celery's ids are uuid4, so their first 8 hex digits are uniform; other ids are hashed.
local function sampled(id)
  local head = tonumber(string.sub(id, 1, 8), 16)
  if head == nil or #id < 8 then
    head = 0
    for i = 1, #id do head = (head * 31 + string.byte(id, i)) % 4294967296 end
  end
  return head / 4294967295 < rate
end

local function remove(ids)
  for i = 1, #ids, 500 do
    local part = {unpack(ids, i, math.min(i + 499, #ids))}
    redis.call('ZREM', recent, unpack(part))
    redis.call('ZREM', kept, unpack(part))
  end
  for _, id in ipairs(ids) do
    local head = string.sub(id, 1, 4)
    if #head < 4 or string.find(head, '[^0-9a-f]') then head = '~' end
    redis.call('ZREM', ix_id .. head, id)
  end
end

-- A record's name and state index entries (read before its hash is deleted or expires).
local function unindex(id, name, state)
  if name then redis.call('ZREM', ix_name .. name, id) end
  if state and state ~= 'SUCCESS' then redis.call('ZREM', ix_state .. state, id) end
end

-- 1. Classify what changed since the cursor (ties at the cursor are re-read: idempotent).
local cursor = redis.call('GET', cursor_key) or '-inf'
local rows = redis.call('ZRANGEBYSCORE', recent, cursor, now - tonumber(ARGV[2]),
                        'WITHSCORES', 'LIMIT', 0, batch)
local plain, removed, shortened = 0, 0, 0
local gone = {}
for i = 1, #rows, 2 do
  local id = rows[i]
  local key = prefix .. id
  local f = redis.call('HMGET', key, 'state', 'retries', 'runtime', 'name')
  if f[1] == 'SUCCESS' and (tonumber(f[2]) or 0) == 0 and (tonumber(f[3]) or 0) < slow
      and not redis.call('ZSCORE', kept, id) then  -- decided before (a re-read tie)
    plain = plain + 1
    local keep = mode == 'all' or (mode ~= 'none' and sampled(id))
    if mode == 'recent' and not keep then
      redis.call('EXPIRE', key, success_ttl)
      redis.call('ZADD', kept, now + success_ttl, id)
      shortened = shortened + 1
    elseif keep then
      redis.call('ZADD', kept, now + task_ttl, id)
    else
      redis.call('DEL', key)
      unindex(id, f[4], nil)
      gone[#gone + 1] = id
    end
  end
end
removed = #gone
remove(gone)
local more = 0
if #rows > 0 then
  local last = rows[#rows]
  if #rows == 2 * batch and rows[2] == last and ('' .. cursor) == last then
    last = '(' .. last  -- a whole batch of one timestamp: step past it
  end
  redis.call('SET', cursor_key, last, 'EX', task_ttl)
  if #rows == 2 * batch then more = 1 end
end

-- 2. Successes whose record expires within the look-ahead leave the indexes (failures leave at
-- the task TTL). Ahead of time, so the record can still say which name index holds it: once
-- its hash has expired the name is gone (an entry missed then waits for the age trim).
local expired = redis.call('ZRANGEBYSCORE', kept, '-inf', now + ahead, 'LIMIT', 0, batch)
for _, id in ipairs(expired) do
  local f = redis.call('HMGET', prefix .. id, 'name', 'state')
  unindex(id, f[1], f[2])
end
remove(expired)
if #expired == batch then more = 1 end

-- 3. The cap: the plain successes nearest their expiry go first, then the oldest others.
local evicted_success, evicted_other = 0, 0
if cap > 0 then
  local excess = math.min(redis.call('ZCARD', recent) - cap, max_evict)
  if excess > 0 then
    local victims = redis.call('ZRANGE', kept, 0, excess - 1)
    for _, id in ipairs(victims) do
      local f = redis.call('HMGET', prefix .. id, 'name', 'state')
      unindex(id, f[1], f[2])
      redis.call('DEL', prefix .. id)
    end
    remove(victims)
    evicted_success = #victims
    excess = excess - #victims
  end
  -- Others only once every record is classified: an unclassified one may be a plain success.
  if excess > 0 and more == 0 then
    local victims = {}
    for _, id in ipairs(redis.call('ZRANGE', recent, 0, excess * 2)) do
      local f = redis.call('HMGET', prefix .. id, 'state', 'name')
      local state = f[1]
      if state ~= 'STARTED' and state ~= 'RECEIVED' and #victims < excess then
        unindex(id, f[2], state)
        redis.call('DEL', prefix .. id)
        victims[#victims + 1] = id
      end
    end
    remove(victims)
    evicted_other = #victims
  end
  if redis.call('ZCARD', recent) > cap and evicted_success + evicted_other > 0 then more = 1 end
end

local counts = {classified = #rows / 2, removed = removed, shortened = shortened,
                evicted_success = evicted_success, evicted_other = evicted_other}
for k, v in pairs(counts) do
  if v > 0 then redis.call('HINCRBY', stats, k, v) end
end
return {#rows / 2, plain, removed, shortened, #expired, evicted_success, evicted_other, more}
