-- job_take: claim the next runnable job and start its attempt, in one round trip.
--
-- Like claim.lua, then on the claimed record: a missing or finished record is dropped (ack),
-- a record of another project/environment is handed back untouched for a while, anything
-- else becomes active for a new attempt (attempts_made + 1, lease token, worker, timeline).
--
--!include lib.lua
-- KEYS[1] consumer set, KEYS[2] token counter, then 7 keys per queue (lib's q table order)
-- ARGV[1] consumer id (also the worker id)      ARGV[2] lease ttl in ms
-- ARGV[3] max delayed jobs promoted per call    ARGV[4] now in ms ("" = server clock)
-- ARGV[5] prefix of record keys                 ARGV[6] worker id, JSON-encoded
-- ARGV[7] start time in seconds, JSON-encoded   ARGV[8] project, JSON-encoded
-- ARGV[9] environment, JSON-encoded             ARGV[10] ms to set a foreign job aside
-- then per queue: name, default max attempts (same order as the key groups)
-- Returns {queue, id, token, record as HGETALL} or {"", ms until the next delayed job (-1)}.
local consumer, ttl, limit, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), clock(ARGV[4])
local prefix = ARGV[5]
local FINAL = {completed = true, failed = true, cancelled = true, ['waiting-children'] = true}

local function max_attempts(key, default)
  local options = redis.call('HGET', key, 'options')
  if options then
    local ok, decoded = pcall(cjson.decode, options)
    if ok and type(decoded) == 'table' and tonumber(decoded['attempts']) then
      return tonumber(decoded['attempts'])
    end
  end
  return default
end

-- The claimed id's fate: true and the record if it starts; false if it was set aside.
local function start(q, queue, id, token, default_max)
  local key = prefix .. 'job:' .. id
  local fields = redis.call('HMGET', key, 'status', 'project', 'environment', 'attempts_made')
  local status = fields[1]
  if not status or FINAL[status] then
    end_lease(q, queue, id, token, KEYS[1])
    settle(q, id, 'ack', 0, now)
    return false
  end
  if fields[2] ~= ARGV[8] or fields[3] ~= ARGV[9] then
    end_lease(q, queue, id, token, KEYS[1])
    settle(q, id, 'nack', tonumber(ARGV[10]), now)
    return false
  end
  local attempt = (tonumber(fields[4]) or 0) + 1
  local maximum = max_attempts(key, default_max)
  redis.call('HSET', key, 'status', 'active', 'attempts_made', string.format('%d', attempt),
    'max_attempts', string.format('%d', maximum), 'started_at', ARGV[7], 'finished_at', 'null',
    'worker_id', ARGV[6], 'lease_token', cjson.encode(token))
  local entry = '{"ts":' .. ARGV[7] .. ',"from":' .. cjson.encode(status) .. ',"to":"active",'
    .. '"reason":' .. cjson.encode('attempt ' .. attempt .. ' on ' .. consumer) .. '}'
  append_lines(key, 'timeline', 100, entry)
  move_index(prefix, id, queue, status, 'active', now)
  return true, redis.call('HGETALL', key)
end

local groups = (#ARGV - 10) / 2
for skipped = 0, 100 do
  local next_due = -1
  local progressed = false
  for n = 0, groups - 1 do
    local q = queue_keys({unpack(KEYS, 3 + n * 7, 9 + n * 7)})
    local queue = ARGV[11 + 2 * n]
    if redis.call('HGET', q.meta, 'paused') ~= '1' then
      promote_due(q, now, limit)
      local popped = redis.call('ZPOPMIN', q.ready)
      if popped[1] then
        local id = popped[1]
        local token = take_lease(q, queue, id, consumer, KEYS[1], KEYS[2], now + ttl)
        local started, record = start(q, queue, id, token, tonumber(ARGV[12 + 2 * n]))
        if redis.call('ZCARD', q.ready) > 0 then redis.call('ZADD', q.marker, 0, 'm') end
        if started then return {queue, id, token, record} end
        progressed = true
        break
      end
      local first = redis.call('ZRANGE', q.delayed, 0, 0, 'WITHSCORES')
      if first[2] then
        local wait = math.max(0, tonumber(first[2]) - now)
        if next_due < 0 or wait < next_due then next_due = wait end
      end
    end
  end
  if not progressed then return {'', next_due} end
end
return {'', 0}
