-- Claim up to N ready DLQ entries for one processor (atomic: two processors never get one
-- entry). Claims whose lease expired go back to pending first.
-- An id whose entry key is gone (TTL, eviction, a manual DEL) is removed from every index and
-- counted as vanished: nothing is ever written under its key (a write would leave a stub hash
-- without a TTL). An id whose key holds no hash leaves the ready and claim sets (it stays in
-- the DLQ for a person to see and discard) and is returned as malformed. One call skips at
-- most SKIP_BUDGET such ids, so cleaning up after a mass eviction never blocks Redis for long.
-- KEYS: ready, claims, dlq, stats ; ARGV: now, lease, n, entry prefix, token
-- Returns {claimed ids, vanished count, malformed ids}.
local SKIP_BUDGET = 1000
local now, lease, want, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local vanished, malformed, skips, ids = 0, {}, 0, {}

local function kind(id) return redis.call('TYPE', prefix .. id)['ok'] end
local function forget(id)
  local n = redis.call('ZREM', KEYS[3], id) + redis.call('ZREM', KEYS[1], id)
    + redis.call('ZREM', KEYS[2], id)
  if n > 0 then vanished = vanished + 1 end
end
local function set_aside(id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  malformed[#malformed + 1] = id
end

for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  local t = kind(id)
  if t == 'none' then forget(id)
  elseif t ~= 'hash' then set_aside(id)
  else
    redis.call('ZREM', KEYS[2], id)
    if redis.call('HGET', prefix .. id, 'status') == 'claimed' then
      redis.call('HSET', prefix .. id, 'status', 'pending')
      redis.call('ZADD', KEYS[1], now, id)
    end
  end
end

while #ids < want and skips < SKIP_BUDGET do
  local batch = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, want - #ids)
  if #batch == 0 then break end
  for _, id in ipairs(batch) do
    local t = kind(id)
    if t == 'hash' then
      redis.call('ZREM', KEYS[1], id)
      redis.call('ZADD', KEYS[2], now + lease, id)
      redis.call('HSET', prefix .. id, 'status', 'claimed', 'claim_token', ARGV[5])
      ids[#ids + 1] = id
    else
      skips = skips + 1
      if t == 'none' then forget(id) else set_aside(id) end
    end
  end
end
if vanished > 0 then redis.call('HINCRBY', KEYS[4], 'vanished', vanished) end
if #malformed > 0 then redis.call('HINCRBY', KEYS[4], 'malformed', #malformed) end
return {ids, vanished, malformed}
