-- Claim up to N ready DLQ entries for one processor (atomic: two processors never get one
-- entry). Claims whose lease expired go back to pending first.
-- KEYS: ready, claims ; ARGV: now, lease, n, entry prefix, token
local now = tonumber(ARGV[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[2], id)
  if redis.call('HGET', ARGV[4] .. id, 'status') == 'claimed' then
    redis.call('HSET', ARGV[4] .. id, 'status', 'pending')
    redis.call('ZADD', KEYS[1], now, id)
  end
end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), id)
  redis.call('HSET', ARGV[4] .. id, 'status', 'claimed', 'claim_token', ARGV[5])
end
return ids
