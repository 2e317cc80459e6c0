-- A fleet-wide circuit breaker (resilience4j semantics), one atomic step per call.
--
-- KEYS[1] state hash   KEYS[2] window list   KEYS[3] transition log
-- KEYS[4] registry zset (names)              KEYS[5] trips zset (KPI 7)
-- ARGV[1] op: "acquire" | "record" | "force"
-- ARGV[2] breaker name
-- ARGV[3] config JSON {w=window size, m=minimum calls, fr=failure rate %, sr=slow rate %,
--         cf=consecutive failures (0 = off), k=half-open permits, rt=recovery timeout s,
--         mh=max seconds in half-open, hc=log entries kept, tr=trip retention s}
-- record: ARGV[4] generation the permit was issued in, ARGV[5] "s" | "f" | "i", ARGV[6] slow 0/1
-- force:  ARGV[4] "open" | "closed" | "reset"
--
-- Hash fields: state (closed|open|half_open|forced_open|forced_closed), gen (bumped on every
-- transition: an outcome reported for an older generation is ignored), until (open until),
-- since (current state since), hp/hs (half-open permits issued / trial successes),
-- n/f/sl (calls, failures, slow calls in the window), cf (consecutive failures), trips,
-- last_trip, cfg. Time is the Redis server's clock, so machines with skewed clocks agree.

local h, wkey, logkey, registry, tripkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local op, name = ARGV[1], ARGV[2]
local cfg = cjson.decode(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000

local cur = redis.call('HMGET', h, 'state', 'gen', 'until', 'hp', 'since', 'cfg')
local state = cur[1]
local gen = tonumber(cur[2] or '0')

local function log(from, to, reason)
  redis.call('LPUSH', logkey, cjson.encode({at = string.format('%.6f', now), from = from,
                                            to = to, reason = reason, gen = gen}))
  redis.call('LTRIM', logkey, 0, cfg.hc - 1)
end

local function clear_window()
  redis.call('DEL', wkey)
  redis.call('HSET', h, 'n', 0, 'f', 0, 'sl', 0, 'cf', 0, 'hp', 0, 'hs', 0)
end

local function transition(to, reason)
  local from = state
  gen = gen + 1
  state = to
  redis.call('HSET', h, 'state', to, 'gen', gen, 'since', now)
  clear_window()
  log(from, to, reason)
end

local function trip(reason)
  transition('open', reason)
  redis.call('HSET', h, 'until', now + cfg.rt, 'last_trip', now)
  redis.call('HINCRBY', h, 'trips', 1)
  redis.call('ZADD', tripkey, now, name .. '|' .. gen)
  redis.call('ZREMRANGEBYSCORE', tripkey, '-inf', now - cfg.tr)
end

if not state then
  state = 'closed'
  redis.call('HSET', h, 'state', state, 'gen', 0, 'since', now, 'cfg', ARGV[3], 'trips', 0)
  clear_window()
  redis.call('ZADD', registry, now, name)
elseif cur[6] ~= ARGV[3] then
  redis.call('HSET', h, 'cfg', ARGV[3])
end

if op == 'acquire' then
  if state == 'closed' or state == 'forced_closed' then
    return {1, gen, state, 0}
  end
  if state == 'forced_open' then
    return {0, gen, state, -1}
  end
  if state == 'open' then
    local open_until = tonumber(cur[3] or '0')
    if now < open_until then
      return {0, gen, state, math.ceil((open_until - now) * 1000)}
    end
    transition('half_open', 'recovery timeout elapsed')
    redis.call('HSET', h, 'hp', 1)
    return {1, gen, state, 0}
  end
  -- half_open: exactly k trial permits across the fleet
  if now - tonumber(cur[5] or now) > cfg.mh then
    trip('no trial result within ' .. cfg.mh .. 's of half-open')
    return {0, gen, state, math.ceil(cfg.rt * 1000)}
  end
  local issued = tonumber(cur[4] or '0')
  if issued < cfg.k then
    redis.call('HINCRBY', h, 'hp', 1)
    return {1, gen, state, 0}
  end
  return {0, gen, state, -2}
end

if op == 'record' then
  if tonumber(ARGV[4]) ~= gen then
    return {state, 0}
  end
  local outcome, slow = ARGV[5], tonumber(ARGV[6])
  if state == 'half_open' then
    if outcome == 'i' then
      redis.call('HINCRBY', h, 'hp', -1)
      return {state, 0}
    end
    if outcome == 'f' or slow == 1 then
      trip(outcome == 'f' and 'trial call failed' or 'trial call was slow')
      return {state, 1}
    end
    local ok = redis.call('HINCRBY', h, 'hs', 1)
    if ok >= cfg.k then
      transition('closed', ok .. ' trial call(s) succeeded')
      return {state, 1}
    end
    return {state, 0}
  end
  if state ~= 'closed' or outcome == 'i' then
    return {state, 0}
  end
  redis.call('LPUSH', wkey, outcome .. slow)
  redis.call('HINCRBY', h, 'n', 1)
  if slow == 1 then redis.call('HINCRBY', h, 'sl', 1) end
  local consecutive = 0
  if outcome == 'f' then
    redis.call('HINCRBY', h, 'f', 1)
    consecutive = redis.call('HINCRBY', h, 'cf', 1)
  else
    redis.call('HSET', h, 'cf', 0)
  end
  while redis.call('LLEN', wkey) > cfg.w do
    local old = redis.call('RPOP', wkey)
    redis.call('HINCRBY', h, 'n', -1)
    if string.sub(old, 1, 1) == 'f' then redis.call('HINCRBY', h, 'f', -1) end
    if string.sub(old, 2, 2) == '1' then redis.call('HINCRBY', h, 'sl', -1) end
  end
  if cfg.cf > 0 and consecutive >= cfg.cf then
    trip(consecutive .. ' consecutive failures')
    return {state, 1}
  end
  local c = redis.call('HMGET', h, 'n', 'f', 'sl')
  local n, f, sl = tonumber(c[1]), tonumber(c[2]), tonumber(c[3])
  if n >= cfg.m then
    if f * 100 >= cfg.fr * n then
      trip(string.format('failure rate %.1f%% over %d calls', f * 100 / n, n))
      return {state, 1}
    end
    if sl * 100 >= cfg.sr * n then
      trip(string.format('slow call rate %.1f%% over %d calls', sl * 100 / n, n))
      return {state, 1}
    end
  end
  return {state, 0}
end

if op == 'force' then
  local action = ARGV[4]
  if action == 'open' then
    transition('forced_open', 'forced open by an operator')
  elseif action == 'closed' then
    transition('forced_closed', 'forced closed by an operator')
  else
    transition('closed', 'reset by an operator')
  end
  return {state}
end

return redis.error_reply('unknown breaker op ' .. tostring(op))
