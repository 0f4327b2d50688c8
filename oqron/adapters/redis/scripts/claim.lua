-- claim: lease the first ready job of the first unpaused queue that has one.
--
-- Due delayed jobs are promoted to ready in the same call, so promotion is atomic with the
-- claim. The lease is recorded three ways: the deadline in `active`, the token and holder in
-- `leases`, and the job in the consumer's set (so the master can find a job a child claimed
-- a moment before it died).
--
-- KEYS[1] consumer set   SET  "queue<TAB>id" of every lease this consumer holds
-- KEYS[2] token counter  STRING, INCR gives each lease a unique token
-- then for each queue, 7 keys:
--   ready ZSET, delayed ZSET, active ZSET, leases HASH (id -> "token consumer"),
--   prio HASH, meta HASH (strategy, seq, paused), marker ZSET
-- ARGV[1] consumer id
-- ARGV[2] lease ttl in ms
-- ARGV[3] max delayed jobs promoted per queue in one call
-- ARGV[4] now in ms ("" = the server clock; tests pass a fake clock)
-- ARGV[5..] queue names, same order as the key groups
-- Returns {queue name, job id, token} on success, or {"", ms until the next delayed job is
-- due (-1 if none)} when nothing could be claimed.
local consumer, ttl, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local function clock(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local now = clock(ARGV[4])
local next_due = -1

local function score(strategy, seq, priority)
  if strategy == 'lifo' then return -seq end
  if strategy == 'priority' then return priority * 8589934592 + seq end
  return seq
end

for q = 0, #ARGV - 5 do
  local k = 2 + q * 7
  local ready, delayed, active, leases = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  local prio, meta, marker = KEYS[k + 5], KEYS[k + 6], KEYS[k + 7]
  if redis.call('HGET', meta, 'paused') ~= '1' then
    local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, limit)
    if #due > 0 then
      local strategy = redis.call('HGET', meta, 'strategy') or 'fifo'
      for _, id in ipairs(due) do
        redis.call('ZREM', delayed, id)
        local seq = redis.call('HINCRBY', meta, 'seq', 1)
        local p = tonumber(redis.call('HGET', prio, id) or '0')
        redis.call('ZADD', ready, string.format('%.0f', score(strategy, seq, p)), id)
      end
    end
    local popped = redis.call('ZPOPMIN', ready)
    if popped[1] then
      local id = popped[1]
      local token = tostring(redis.call('INCR', KEYS[2]))
      redis.call('ZADD', active, string.format('%.0f', now + ttl), id)
      redis.call('HSET', leases, id, token .. ' ' .. consumer)
      redis.call('SADD', KEYS[1], ARGV[5 + q] .. '\t' .. id)
      if redis.call('ZCARD', ready) > 0 then redis.call('ZADD', marker, 0, 'm') end
      return {ARGV[5 + q], id, token}
    end
    local first = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
    if first[2] then
      local wait = math.max(0, tonumber(first[2]) - now)
      if next_due < 0 or wait < next_due then next_due = wait end
    end
  end
end
return {'', next_due}
