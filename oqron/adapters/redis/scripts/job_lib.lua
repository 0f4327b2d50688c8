-- job_lib: the combined job steps (storage and broker on one Redis), shared by job_take,
-- job_finish and job_next. Needs lib.lua before it. Every redis.call costs a few
-- microseconds, so each step reads a record once and writes it once.

local TIMELINE_CAP = 100
local NOT_STARTABLE = {completed = true, failed = true, cancelled = true, ['waiting-children'] = true}

local function max_attempts_of(options, default)
  if options then
    local ok, decoded = pcall(cjson.decode, options)
    if ok and type(decoded) == 'table' and tonumber(decoded['attempts']) then
      return tonumber(decoded['attempts'])
    end
  end
  return default
end

-- Start the attempt of a freshly leased id, or deal with it (drop a missing/final record, set a
-- foreign one aside). A: see take_jobs. Returns the started record as stored (field/value
-- pairs, then the pairs this start changed: the later pair of a field wins) and its status
-- before, or nil if the job does not start. The client decodes it: turning it into one JSON
-- text here cost Redis ~80 us per job on a cold cache, a third of a finish-and-take.
local function start_attempt(K, A, q, queue, id, token, default_max, now)
  local key = A[5] .. 'job:' .. id
  local flat = redis.call('HGETALL', key)
  local record = {}
  for j = 1, #flat, 2 do record[flat[j]] = flat[j + 1] end
  local status = record['status']
  if not status or NOT_STARTABLE[status] then
    end_lease(q, queue, id, token, K[1])
    settle(q, id, 'ack', 0, now)
    return nil
  end
  if record['project'] ~= A[8] or record['environment'] ~= A[9] then
    end_lease(q, queue, id, token, K[1])
    settle(q, id, 'nack', tonumber(A[10]), now)
    return nil
  end
  local attempt = (tonumber(record['attempts_made']) or 0) + 1
  local entry = '{"ts":' .. A[7] .. ',"from":' .. cjson.encode(status) .. ',"to":"active","reason":'
    .. cjson.encode('attempt ' .. attempt .. ' on ' .. A[1]) .. '}'
  local changes = {'status', 'active', 'attempts_made', string.format('%d', attempt),
    'max_attempts', string.format('%d', max_attempts_of(record['options'], default_max)),
    'started_at', A[7], 'finished_at', 'null', 'worker_id', A[6], 'lease_token', cjson.encode(token),
    'timeline', appended(record['timeline'], entry, TIMELINE_CAP)}
  redis.call('HSET', key, unpack(changes))
  for j = 1, #changes do flat[#flat + 1] = changes[j] end
  return flat, status
end

-- Move the started ids out of their former status indexes into 'active', one call per status.
local function index_started(prefix, queue, moved, now)
  local stamp, scored = fmt(now), {}
  for status, ids in pairs(moved) do
    redis.call('ZREM', prefix .. 'jobs:' .. queue .. ':' .. status, unpack(ids))
    for _, id in ipairs(ids) do
      scored[#scored + 1] = stamp
      scored[#scored + 1] = id
    end
  end
  if #scored > 0 then redis.call('ZADD', prefix .. 'jobs:' .. queue .. ':active', unpack(scored)) end
end

-- Lease up to count ready ids of one queue and start them; appends the started jobs to taken.
-- Returns how many ids were popped (0: the queue had none ready), and whether that emptied
-- the ready set (fewer than count: no need to pop again or to count what is left).
local function take_from(K, A, q, queue, default_max, count, now, taken)
  local popped = redis.call('ZPOPMIN', q.ready, count)
  if #popped == 0 then return 0, true end
  local ids = {}
  for j = 1, #popped, 2 do ids[#ids + 1] = popped[j] end
  local tokens = take_leases(q, queue, ids, A[1], K[1], K[2], now + tonumber(A[2]))
  local moved, first = {}, #taken + 1
  for j, id in ipairs(ids) do
    local record, status = start_attempt(K, A, q, queue, id, tokens[j], default_max, now)
    if record then
      taken[#taken + 1] = {queue, id, tokens[j], record}
      moved[status] = moved[status] or {}
      table.insert(moved[status], id)
    end
  end
  index_started(A[5], queue, moved, now)
  local emptied = #ids < count
  local left = emptied and 0 or redis.call('ZCARD', q.ready)
  if left > 0 then redis.call('ZADD', q.marker, 0, 'm') end
  for j = first, #taken do taken[j][5] = left end
  return #ids, emptied
end

-- take_jobs: claim up to count runnable jobs and start them (a child that runs short jobs takes
-- several per round trip), from the first queue that has some, then the next.
-- K[1] consumer set, K[2] token counter, then 7 keys per queue (lib's q table order)
-- A[1] consumer id (also the worker id)      A[2] lease ttl in ms
-- A[3] max delayed jobs promoted per call    A[4] now in ms ("" = server clock)
-- A[5] prefix of record keys                 A[6] worker id, JSON-encoded
-- A[7] start time in seconds, JSON-encoded ("" = now)   A[8] project, JSON-encoded
-- A[9] environment, JSON-encoded             A[10] ms to set a foreign job aside
-- then per queue: name, default max attempts (same order as the key groups)
-- Returns a list of {queue, id, token, started record (see start_attempt), jobs still ready
-- in that queue after the take}, or the single reply
-- {{"", ms until the next delayed job (-1)}} when none could be taken.
local function take_jobs(K, A, count)
  local limit, now = tonumber(A[3]), clock(A[4])
  if A[7] == '' then A[7] = string.format('%.3f', now / 1000) end
  local groups = (#A - 10) / 2
  local taken, next_due = {}, -1
  for n = 0, groups - 1 do
    local q = queue_keys({unpack(K, 3 + n * 7, 9 + n * 7)})
    if redis.call('HGET', q.meta, 'paused') ~= '1' then
      promote_due(q, now, limit)
      -- popped ids that do not start (dropped, set aside) leave room: pop again, boundedly
      for _ = 0, 100 do
        if #taken >= count then return taken end
        local _, emptied = take_from(K, A, q, A[11 + 2 * n], tonumber(A[12 + 2 * n]), count - #taken, now, taken)
        if emptied then break end
      end
      if #taken == 0 then  -- only a reply with no job says when to come back
        local first = redis.call('ZRANGE', q.delayed, 0, 0, 'WITHSCORES')
        if first[2] then
          local wait = math.max(0, tonumber(first[2]) - now)
          if next_due < 0 or wait < next_due then next_due = wait end
        end
      end
    end
  end
  if #taken == 0 then return {{'', next_due}} end
  return taken
end

-- finish_attempt: record the end of an attempt if it still owns the record, then settle.
-- K[1..7] the queue's keys (lib's q table order), K[8] the holder's consumer set
-- A[1] prefix of record keys   A[2] job id          A[3] lease token
-- A[4] "ack" or "nack"          A[5] nack delay ms   A[6] queue name
-- A[7] now in ms ("" = server clock)                A[8] timeline entry (JSON)
-- A[9..] field/value pairs to set (encoded; status raw)
-- Returns {0} when the attempt no longer owns the record, else {1, lease still current (1/0),
-- children_ids as JSON lines}.
local function finish_attempt(K, A)
  local q = queue_keys(K)
  local prefix, id, token = A[1], A[2], A[3]
  local key = prefix .. 'job:' .. id
  local fields = redis.call('HMGET', key, 'status', 'lease_token', 'timeline', 'children_ids')
  local status = fields[1]
  if not status or fields[2] ~= cjson.encode(token) then return {0} end
  local new_status = status
  local sets = {unpack(A, 9)}
  for j = 1, #sets, 2 do
    if sets[j] == 'status' then new_status = sets[j + 1] end
  end
  table.insert(sets, 'timeline')
  table.insert(sets, appended(fields[3], A[8], TIMELINE_CAP))
  local now = clock(A[7])
  redis.call('HSET', key, unpack(sets))
  move_index(prefix, id, A[6], status, new_status, now)
  local current = 0
  if end_lease(q, A[6], id, token, K[8]) then
    settle(q, id, A[4], tonumber(A[5]), now)
    current = 1
  end
  return {1, current, fields[4] or ''}
end
