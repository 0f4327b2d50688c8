-- publish: make job ids ready now, or delayed until now + delay.
--
--!include lib.lua
-- KEYS[1..7] the queue's keys (lib's q table order)
-- ARGV[1] strategy (fifo | lifo | priority), remembered for every later entry of this queue;
--         "" keeps the remembered one (fifo if none)
-- ARGV[2] priority (integer, 0 = none)
-- ARGV[3] delay in ms (0 = ready now)
-- ARGV[4] now in ms ("" = the server clock; tests pass a fake clock)
-- ARGV[5..] job ids, in publish order
-- Returns the number of ids published; ids already ready, delayed or leased are left alone.
local q = queue_keys(KEYS)
remember_strategy(q, ARGV[1])
local priority, delay, now = tonumber(ARGV[2]), tonumber(ARGV[3]), clock(ARGV[4])
local published = 0
for i = 5, #ARGV do
  if publish_one(q, ARGV[i], priority, delay, now) then published = published + 1 end
end
if published > 0 then redis.call('ZADD', q.marker, 0, 'm') end
return published
