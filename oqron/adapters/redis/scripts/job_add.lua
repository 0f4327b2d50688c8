-- job_add: store new job records and publish them, in one round trip (storage and broker on
-- the same Redis). Ids already stored are left untouched and not published again.
--
-- Index and queue writes are batched (one ZADD per thousand ids) because add_bulk sends
-- thousands of records in one call.
--
--!include lib.lua
-- KEYS[1..7] the queue's keys (lib's q table order)
-- ARGV[1] prefix of record keys
-- ARGV[2] queue name
-- ARGV[3] strategy to remember ("" keeps the remembered one)
-- ARGV[4] priority, ARGV[5] delay in ms
-- ARGV[6] "1" to publish the stored ids, "0" to only store them (jobs waiting for parents)
-- ARGV[7] now in ms ("" = the server clock)
-- ARGV[8] "1" if the ids were generated for this add (never stored, in no queue: nothing to
--         check, which saves four calls per record), "0" for ids the caller chose
-- then per record: id, status, field count n, then n field/value pairs
-- Returns one flag per record: 1 stored (and published), 0 already present.

-- One record of a generated id (Queue.add's common case) goes first, before the general
-- path's locals, tables and closures: an add often runs on a cold cache, where each Lua step
-- costs several times what it does in a busy loop (server time per add 28 -> 25 us here).
if ARGV[8] == '1' and #ARGV == 11 + 2 * tonumber(ARGV[11]) then
  local prefix, queue, id = ARGV[1], ARGV[2], ARGV[9]
  local now = clock(ARGV[7])
  store_record(prefix, id, queue, ARGV[10], now, unpack(ARGV, 12))
  if ARGV[6] ~= '1' then return {1} end
  local q = queue_keys(KEYS)
  place(q, id, tonumber(ARGV[4]), tonumber(ARGV[5]), now, remember_strategy(q, ARGV[3]))
  redis.call('ZADD', q.marker, '0', 'm')
  return {1}
end

local q = queue_keys(KEYS)
local prefix, queue = ARGV[1], ARGV[2]
local priority, delay, publish, now = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6] == '1', clock(ARGV[7])
local new_ids = ARGV[8] == '1'

local out, fresh, statuses = {}, {}, {}
local i = 9
while i <= #ARGV do
  local id, status, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local key = prefix .. 'job:' .. id
  if not new_ids and redis.call('EXISTS', key) == 1 then
    table.insert(out, 0)
  else
    redis.call('HSET', key, 'id', id, 'queue', queue, 'status', status, unpack(ARGV, i + 3, i + 2 + 2 * n))
    table.insert(out, 1)
    table.insert(fresh, id)
    statuses[status] = statuses[status] or {}
    table.insert(statuses[status], id)
  end
  i = i + 3 + 2 * n
end
if #fresh == 0 then return out end

local stamp = fmt(now)
local function zadd_all(key, ids, score_of)
  for first = 1, #ids, 1000 do
    local args = {}
    for j = first, math.min(first + 999, #ids) do
      table.insert(args, score_of(j))
      table.insert(args, ids[j])
    end
    redis.call('ZADD', key, unpack(args))
  end
end
for status, ids in pairs(statuses) do
  zadd_all(prefix .. 'jobs:' .. queue .. ':' .. status, ids, function() return stamp end)
end
zadd_all(prefix .. 'jobs:' .. queue .. ':all', fresh, function() return stamp end)
redis.call('SADD', prefix .. 'queues', queue)
if not publish then return out end

local strategy = remember_strategy(q, ARGV[3])
-- Fresh records of chosen ids are rarely in the queue already (only ids left behind by a
-- removed record), so check in batches: ZMSCORE over each of the queue's sets.
local ids = new_ids and fresh or {}
for first = 1, new_ids and 0 or #fresh, 1000 do
  local batch = {unpack(fresh, first, math.min(first + 999, #fresh))}
  local ready = redis.call('ZMSCORE', q.ready, unpack(batch))
  local delayed = redis.call('ZMSCORE', q.delayed, unpack(batch))
  local active = redis.call('ZMSCORE', q.active, unpack(batch))
  for j, id in ipairs(batch) do
    if not (ready[j] or delayed[j] or active[j]) then table.insert(ids, id) end
  end
end
if #ids == 0 then return out end
if priority ~= 0 then
  for _, id in ipairs(ids) do redis.call('HSET', q.prio, id, priority) end
end
if delay > 0 then
  local due = fmt(now + delay)
  zadd_all(q.delayed, ids, function() return due end)
else
  local last = redis.call('HINCRBY', q.meta, 'seq', #ids)
  zadd_all(q.ready, ids, function(j) return fmt(entry_score(strategy, last - #ids + j, priority)) end)
end
redis.call('ZADD', q.marker, 0, 'm')
return out
