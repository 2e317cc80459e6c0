-- Which of some task ids are still somewhere in a Redis broker: in a queue's lists (every
-- priority lane) or in kombu's unacked hash. Run on the broker's Redis, read-only, in one step:
-- a message moving meanwhile (popped into a worker's unacked hash, restored from it to a list)
-- cannot slip between two reads. A kombu message is JSON whose headers hold "id": "<task id>"
-- (the body is base64: it cannot hold that text); every "id" key of a message is checked.
-- KEYS[1] = the unacked hash; KEYS[2..] = the lanes of every queue, queue after queue.
-- ARGV[1] = most messages read (lists and hash together); ARGV[2] = number of queues n;
-- ARGV[3 .. 2+n] = lanes per queue; ARGV[3+n ..] = the task ids.
-- Returns {complete (1/0), too_deep queue numbers (1-based), found ids}: a queue whose lanes
-- hold more than the budget left is not read (its candidates stay undecided); an unacked hash
-- over the budget makes the whole answer incomplete (nothing may be declared lost).
local budget = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local want = {}
for i = 3 + n, #ARGV do want[ARGV[i]] = true end
local found = {}
local function mark(message)
  for id in string.gmatch(message, '"id":%s*"([^"]*)"') do
    if want[id] then found[id] = true end
  end
end
local unacked = redis.call('HLEN', KEYS[1])
if unacked > budget then return {0, {}, {}} end
budget = budget - unacked
for _, message in ipairs(redis.call('HVALS', KEYS[1])) do mark(message) end
local deep = {}
local k = 2
for q = 1, n do
  local lanes = tonumber(ARGV[2 + q])
  local depth = 0
  for j = k, k + lanes - 1 do depth = depth + redis.call('LLEN', KEYS[j]) end
  if depth > budget then
    deep[#deep + 1] = q
  else
    budget = budget - depth
    for j = k, k + lanes - 1 do
      for _, message in ipairs(redis.call('LRANGE', KEYS[j], 0, -1)) do mark(message) end
    end
  end
  k = k + lanes
end
local ids = {}
for id in pairs(found) do ids[#ids + 1] = id end
return {1, deep, ids}
