-- publish: make job ids ready now, or delayed until now + delay.
--
-- KEYS[1] ready    ZSET  id -> entry score (lowest is claimed first)
-- KEYS[2] delayed  ZSET  id -> due time (ms, server clock)
-- KEYS[3] active   ZSET  id -> lease deadline (ms)
-- KEYS[4] meta     HASH  strategy, seq (entry counter), paused
-- KEYS[5] prio     HASH  id -> priority (only non-zero priorities are kept)
-- KEYS[6] marker   ZSET  one member; blocked consumers BZPOPMIN it to be woken
-- ARGV[1] strategy (fifo | lifo | priority), remembered for every later entry of this queue;
--         "" keeps the remembered one (fifo if none)
-- ARGV[2] priority (integer, 0 = none)
-- ARGV[3] delay in ms (0 = ready now)
-- ARGV[4] now in ms ("" = the server clock; tests pass a fake clock)
-- ARGV[5..] job ids, in publish order
-- Returns the number of ids published; ids already ready, delayed or leased are left alone.
local strategy, priority, delay = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local remembered = redis.call('HGET', KEYS[4], 'strategy')
if strategy == '' then
  strategy = remembered or 'fifo'
elseif remembered ~= strategy then
  redis.call('HSET', KEYS[4], 'strategy', strategy)
end
local function clock(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local due = clock(ARGV[4]) + delay
local published = 0
for i = 5, #ARGV do
  local id = ARGV[i]
  if not redis.call('ZSCORE', KEYS[1], id) and not redis.call('ZSCORE', KEYS[2], id)
      and not redis.call('ZSCORE', KEYS[3], id) then
    if priority ~= 0 then redis.call('HSET', KEYS[5], id, priority) end
    if delay > 0 then
      redis.call('ZADD', KEYS[2], string.format('%.0f', due), id)
    else
      local seq = redis.call('HINCRBY', KEYS[4], 'seq', 1)
      local score = seq
      if strategy == 'lifo' then score = -seq
      elseif strategy == 'priority' then score = priority * 8589934592 + seq end
      redis.call('ZADD', KEYS[1], string.format('%.0f', score), id)
    end
    published = published + 1
  end
end
if published > 0 then redis.call('ZADD', KEYS[6], 0, 'm') end
return published
