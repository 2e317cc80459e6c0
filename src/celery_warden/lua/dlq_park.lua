-- Park a DLQ entry for manual review (atomic with its existence: an entry deleted a moment
-- before is not resurrected as a status-only hash). An entry that already left the DLQ
-- (requeued) is not parked: no listing would show it.
-- KEYS: entry, dlq, ready, claims, stats ; ARGV: id, note ('' for none)
-- Returns 1 if parked, else 0.
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'hash' then
  if t == 'none' then
    local n = redis.call('ZREM', KEYS[2], ARGV[1]) + redis.call('ZREM', KEYS[3], ARGV[1])
      + redis.call('ZREM', KEYS[4], ARGV[1])
    if n > 0 then redis.call('HINCRBY', KEYS[5], 'vanished', 1) end
  end
  return 0
end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HSET', KEYS[1], 'status', 'parked')
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'note', ARGV[2]) end
redis.call('HDEL', KEYS[1], 'claim_token')
redis.call('HINCRBY', KEYS[5], 'parked', 1)
return 1
