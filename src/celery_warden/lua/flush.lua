-- Apply one flusher batch atomically: task records, metric buckets, indexes, heartbeats.
-- ARGV[1] = JSON payload built by celery_warden.store.build_payload; ARGV[2] = now (epoch s).
-- Values arrive as strings so epoch timestamps keep their microseconds.
local p = cjson.decode(ARGV[1])
local now = tonumber(ARGV[2])

-- Task records. A record's attempt fields (state, times, error) are written only when the
-- incoming (retries, rank) is not older than the stored one, so writes from the publisher,
-- the worker main process and pool children can arrive in any order.
local recent = {}
for _, t in ipairs(p.tasks) do
  local key, static, att, retries, rank = t[1], t[2], t[3], t[4], t[5]
  local args = {}
  for k, v in pairs(static) do args[#args + 1] = k; args[#args + 1] = v end
  if rank > 0 then
    local cur = redis.call('HMGET', key, 'retries', 'rank')
    local cretries = tonumber(cur[1]) or -1
    local crank = tonumber(cur[2]) or -1
    if retries > cretries or (retries == cretries and rank >= crank) then
      if retries > cretries and cretries >= 0 then
        redis.call('HDEL', key, 'finished', 'runtime', 'exc_type', 'exc_msg', 'started',
                   'received', 'wait')
      end
      for k, v in pairs(att) do args[#args + 1] = k; args[#args + 1] = v end
      args[#args + 1] = 'retries'; args[#args + 1] = tostring(retries)
      args[#args + 1] = 'rank'; args[#args + 1] = tostring(rank)
    end
  end
  if #args > 0 then
    redis.call('HSET', key, unpack(args))
  end
  redis.call('EXPIRE', key, p.task_ttl)
  recent[#recent + 1] = t[6]
  recent[#recent + 1] = t[7]
end
if #recent > 0 then
  for i = 1, #recent, 2000 do
    redis.call('ZADD', p.recent, unpack(recent, i, math.min(i + 1999, #recent)))
  end
  redis.call('ZREMRANGEBYSCORE', p.recent, '-inf', tostring(now - p.task_ttl))
end

-- Metric buckets: counters add, float sums add, min/max compare.
for _, b in ipairs(p.buckets) do
  local key = b[1]
  for k, v in pairs(b[3]) do redis.call('HINCRBY', key, k, v) end
  for k, v in pairs(b[4]) do redis.call('HINCRBYFLOAT', key, k, v) end
  if b[5] ~= '' then
    local cur = tonumber(redis.call('HGET', key, 'dmin'))
    if cur == nil or tonumber(b[5]) < cur then redis.call('HSET', key, 'dmin', b[5]) end
    cur = tonumber(redis.call('HGET', key, 'dmax'))
    if cur == nil or tonumber(b[6]) > cur then redis.call('HSET', key, 'dmax', b[6]) end
  end
  redis.call('EXPIRE', key, b[2])
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

-- Process-level counters (dropped records and the like).
for _, s in ipairs(p.stats) do
  redis.call('HINCRBY', s[1], s[2], s[3])
end
return #p.tasks
