-- Idempotency keys: claim with a lease, complete with the first result, release on failure.
--
-- KEYS[1] the key's hash: state (running|done), owner (task id), since, finished, result,
--         has_result. A running claim expires with its lease; a done key with the TTL.
-- ARGV[1] op: "claim" | "done" | "release";  ARGV[2] task id
-- claim:   ARGV[3] lease (ms)           -> {status, owner, result, has_result, pttl ms}
--          status "claimed" (run it), "done" (return the first result), "running" (another
--          task id holds the lease). A redelivery of the holder itself (same task id, e.g.
--          after its worker was lost) takes the claim again at once.
-- done:    ARGV[3] ttl (ms), ARGV[4] result JSON, ARGV[5] has_result 0/1 -> {1} or {0} when
--          another task id holds the key (this run's lease had expired)
-- release: -> {1} if this task id's running claim was deleted, else {0}

local key, op, id = KEYS[1], ARGV[1], ARGV[2]
local t = redis.call('TIME')
local now = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
local cur = redis.call('HMGET', key, 'state', 'owner', 'result', 'has_result')
local state, owner = cur[1], cur[2]

if op == 'claim' then
  if state == 'done' then
    return {'done', owner, cur[3] or '', tonumber(cur[4] or '0'), redis.call('PTTL', key)}
  end
  if state and owner ~= id then
    return {'running', owner, '', 0, redis.call('PTTL', key)}
  end
  redis.call('HSET', key, 'state', 'running', 'owner', id, 'since', now)
  redis.call('PEXPIRE', key, ARGV[3])
  return {'claimed', id, '', 0, tonumber(ARGV[3])}
end

if op == 'done' then
  if state and owner ~= id then
    return {0}
  end
  redis.call('HSET', key, 'state', 'done', 'owner', id, 'finished', now, 'result', ARGV[4],
             'has_result', ARGV[5])
  redis.call('PEXPIRE', key, ARGV[3])
  return {1}
end

if op == 'release' then
  if state == 'running' and owner == id then
    redis.call('DEL', key)
    return {1}
  end
  return {0}
end

return redis.error_reply('unknown idempotency op ' .. tostring(op))
