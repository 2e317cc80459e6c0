-- Claim one DLQ entry for a manual requeue (a parked one only when allowed).
-- KEYS: entry, ready, claims ; ARGV: id, token, deadline, allow parked (1/0)
-- Returns the status the entry had (so a failed requeue can restore it), or 0.
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'pending' and not (status == 'parked' and ARGV[4] == '1') then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[1], 'status', 'claimed', 'claim_token', ARGV[2])
return status
