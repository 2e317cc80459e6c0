-- Forget DLQ ids whose entry key is gone (TTL, eviction, a manual DEL): remove each from every
-- index and count it as vanished. The existence check and the removal are one step, so an
-- entry added meanwhile is never forgotten.
-- KEYS: dlq, ready, claims, stats ; ARGV: entry prefix, id, id, ...
-- Returns how many ids were forgotten.
local forgotten = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('EXISTS', ARGV[1] .. id) == 0 then
    local n = redis.call('ZREM', KEYS[1], id) + redis.call('ZREM', KEYS[2], id)
      + redis.call('ZREM', KEYS[3], id)
    if n > 0 then forgotten = forgotten + 1 end
  end
end
if forgotten > 0 then redis.call('HINCRBY', KEYS[4], 'vanished', forgotten) end
return forgotten
