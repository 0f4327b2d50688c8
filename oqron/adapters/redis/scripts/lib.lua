-- lib: functions shared by the scripts (pasted in where a script says "--!include lib.lua").
--
-- Queue keys come as a table q = {ready, delayed, active, leases, prio, meta, marker}:
--   ready    ZSET  id -> entry score (lowest is claimed first)
--   delayed  ZSET  id -> due time (ms)
--   active   ZSET  id -> lease deadline (ms)
--   leases   HASH  id -> "token consumer"
--   prio     HASH  id -> priority (only non-zero priorities are kept)
--   meta     HASH  strategy, seq (entry counter), paused
--   marker   ZSET  one member; blocked consumers BZPOPMIN it to be woken
-- Records: {prefix}job:{id} HASH (id/queue/status raw, capped lists as JSON lines, the rest
-- JSON) indexed by {prefix}jobs:{queue}:{status} and {prefix}jobs:{queue}:all ZSETs.

local function clock(arg)
  if arg ~= nil and arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function fmt(n) return string.format('%.0f', n) end

local function queue_keys(k)
  return {ready = k[1], delayed = k[2], active = k[3], leases = k[4], prio = k[5], meta = k[6],
          marker = k[7]}
end

local function entry_score(strategy, seq, priority)
  if strategy == 'lifo' then return -seq end
  if strategy == 'priority' then return priority * 8589934592 + seq end
  return seq
end

-- Give the job the next place in line under the queue's remembered strategy. A caller that
-- knows the strategy in force and the job's priority passes them (two reads saved).
local function make_ready(q, id, strategy, priority)
  strategy = strategy or redis.call('HGET', q.meta, 'strategy') or 'fifo'
  local seq = redis.call('HINCRBY', q.meta, 'seq', 1)
  priority = priority or tonumber(redis.call('HGET', q.prio, id) or '0')
  redis.call('ZADD', q.ready, fmt(entry_score(strategy, seq, priority)), id)
end

-- Put a job handed back without running at the head of its queue (see Broker.release): just
-- below the lowest ready score it competes with. Under 'priority' those are the scores of its
-- priority, priority * 2^33 + seq, shifted down by hand-backs; seq and hand-backs stay far
-- below 2^32, so the band is priority * 2^33 +- 2^32.
local function make_head(q, id)
  local strategy = redis.call('HGET', q.meta, 'strategy') or 'fifo'
  local low, high = '-inf', '+inf'
  if strategy == 'priority' then
    local band = tonumber(redis.call('HGET', q.prio, id) or '0') * 8589934592
    low, high = fmt(band - 4294967296), '(' .. fmt(band + 4294967296)
  end
  local head = redis.call('ZRANGEBYSCORE', q.ready, low, high, 'WITHSCORES', 'LIMIT', 0, 1)
  if head[2] then
    redis.call('ZADD', q.ready, fmt(tonumber(head[2]) - 1), id)
  else
    make_ready(q, id)
  end
end

local function promote_due(q, now, limit)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', q.delayed, '-inf', now, 'LIMIT', 0, limit)) do
    redis.call('ZREM', q.delayed, id)
    make_ready(q, id)
  end
end

local function holds(q, id)
  return redis.call('ZSCORE', q.ready, id) or redis.call('ZSCORE', q.delayed, id)
    or redis.call('ZSCORE', q.active, id)
end

-- Put an id the queue does not hold in line (ready now or delayed); strategy: as make_ready.
local function place(q, id, priority, delay, now, strategy)
  if priority ~= 0 then redis.call('HSET', q.prio, id, priority) end
  if delay > 0 then
    redis.call('ZADD', q.delayed, fmt(now + delay), id)
  else
    make_ready(q, id, strategy, priority)
  end
end

-- Publish one id (ready now or delayed); false if the queue already holds it.
local function publish_one(q, id, priority, delay, now)
  if holds(q, id) then return false end
  place(q, id, priority, delay, now)
  return true
end

-- Remember the queue's strategy ("" keeps the remembered one); returns the strategy in force.
local function remember_strategy(q, strategy)
  local remembered = redis.call('HGET', q.meta, 'strategy')
  if strategy ~= '' and remembered ~= strategy then
    redis.call('HSET', q.meta, 'strategy', strategy)
    return strategy
  end
  return remembered or 'fifo'
end

-- Lease ids (one queue) to a consumer until deadline; returns their tokens, in order.
local function take_leases(q, queue, ids, consumer, consumer_key, token_key, deadline)
  local last = redis.call('INCRBY', token_key, #ids)
  local tokens, scored, held, members = {}, {}, {}, {}
  local due = fmt(deadline)
  for j, id in ipairs(ids) do
    local token = fmt(last - #ids + j)
    tokens[j] = token
    scored[#scored + 1] = due
    scored[#scored + 1] = id
    held[#held + 1] = id
    held[#held + 1] = token .. ' ' .. consumer
    members[j] = queue .. '\t' .. id
  end
  redis.call('ZADD', q.active, unpack(scored))
  redis.call('HSET', q.leases, unpack(held))
  redis.call('SADD', consumer_key, unpack(members))
  return tokens
end

-- Drop a lease if the token is current; false (nothing changed) if it is stale.
local function end_lease(q, queue, id, token, consumer_key)
  local held = redis.call('HGET', q.leases, id)
  if not held or string.sub(held, 1, #token + 1) ~= token .. ' ' then return false end
  redis.call('HDEL', q.leases, id)
  redis.call('ZREM', q.active, id)
  redis.call('SREM', consumer_key, queue .. '\t' .. id)
  return true
end

-- After end_lease: forget the job (ack), put it back now or after delay ms (nack), or at the
-- head of its queue (release).
local function settle(q, id, action, delay, now)
  if action == 'ack' then
    redis.call('HDEL', q.prio, id)
  elseif action == 'release' then
    make_head(q, id)
    redis.call('ZADD', q.marker, 0, 'm')
  elseif delay > 0 then
    redis.call('ZADD', q.delayed, fmt(now + delay), id)
    redis.call('ZADD', q.marker, 0, 'm')
  else
    make_ready(q, id)
    redis.call('ZADD', q.marker, 0, 'm')
  end
end

local function move_index(prefix, id, queue, old, new, now)
  if new and new ~= old then
    redis.call('ZREM', prefix .. 'jobs:' .. queue .. ':' .. old, id)
    redis.call('ZADD', prefix .. 'jobs:' .. queue .. ':' .. new, fmt(now), id)
  end
end

-- JSON lines `old` with newline-separated `entries` appended, keeping the newest cap lines.
local function appended(old, entries, cap)
  local text = entries
  if old and old ~= '' then text = old .. '\n' .. entries end
  local _, newlines = string.gsub(text, '\n', '')
  local excess = newlines + 1 - cap
  local pos = 1
  while excess > 0 do
    pos = string.find(text, '\n', pos, true) + 1
    excess = excess - 1
  end
  if pos > 1 then text = string.sub(text, pos) end
  return text
end

local function append_lines(key, field, cap, entries)
  redis.call('HSET', key, field, appended(redis.call('HGET', key, field), entries, cap))
end

-- Store and index a record whose id is not stored: ... are its encoded field/value pairs
-- (without id, queue, status).
local function store_record(prefix, id, queue, status, now, ...)
  redis.call('HSET', prefix .. 'job:' .. id, 'id', id, 'queue', queue, 'status', status, ...)
  local stamp = fmt(now)
  redis.call('ZADD', prefix .. 'jobs:' .. queue .. ':' .. status, stamp, id)
  redis.call('ZADD', prefix .. 'jobs:' .. queue .. ':all', stamp, id)
  redis.call('SADD', prefix .. 'queues', queue)
end

-- Insert a record if absent: fields is a flat list of encoded field/value pairs (without
-- id, queue, status). Returns true if inserted.
local function create_record(prefix, id, queue, status, fields, now)
  if redis.call('EXISTS', prefix .. 'job:' .. id) == 1 then return false end
  store_record(prefix, id, queue, status, now, unpack(fields))
  return true
end
