-- finish: ack (drop the lease, forget the job) or nack (give the job back, now or delayed).
--
-- KEYS[1] ready    ZSET
-- KEYS[2] delayed  ZSET
-- KEYS[3] active   ZSET  id -> lease deadline
-- KEYS[4] leases   HASH  id -> "token consumer"
-- KEYS[5] prio     HASH  id -> priority
-- KEYS[6] meta     HASH  strategy, seq
-- KEYS[7] marker   ZSET
-- KEYS[8] consumer set of the lease holder
-- ARGV[1] job id
-- ARGV[2] lease token
-- ARGV[3] "ack" or "nack"
-- ARGV[4] nack delay in ms (0 = ready now)
-- ARGV[5] queue name (member prefix in the consumer set)
-- ARGV[6] now in ms ("" = the server clock; tests pass a fake clock)
-- Returns 1, or 0 when the token is not the current lease (nothing is changed).
local function clock(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local id, token = ARGV[1], ARGV[2]
local held = redis.call('HGET', KEYS[4], id)
if not held or string.sub(held, 1, #token + 1) ~= token .. ' ' then return 0 end
redis.call('HDEL', KEYS[4], id)
redis.call('ZREM', KEYS[3], id)
redis.call('SREM', KEYS[8], ARGV[5] .. '\t' .. id)
if ARGV[3] == 'ack' then
  redis.call('HDEL', KEYS[5], id)
  return 1
end
local delay = tonumber(ARGV[4])
if delay > 0 then
  local due = clock(ARGV[6]) + delay
  redis.call('ZADD', KEYS[2], string.format('%.0f', due), id)
else
  local strategy = redis.call('HGET', KEYS[6], 'strategy') or 'fifo'
  local seq = redis.call('HINCRBY', KEYS[6], 'seq', 1)
  local score = seq
  if strategy == 'lifo' then score = -seq
  elseif strategy == 'priority' then
    score = tonumber(redis.call('HGET', KEYS[5], id) or '0') * 8589934592 + seq
  end
  redis.call('ZADD', KEYS[1], string.format('%.0f', score), id)
end
redis.call('ZADD', KEYS[7], 0, 'm')
return 1
