-- remove: take one job out of its queue, wherever it is (ready, delayed or leased).
--
-- KEYS[1] ready, KEYS[2] delayed, KEYS[3] active, KEYS[4] leases, KEYS[5] prio
-- ARGV[1] job id
-- ARGV[2] prefix of consumer-set keys (the holder's set is prefix .. consumer; the holder is
--         only known from the lease itself, so that one key is built here)
-- ARGV[3] queue name
-- Returns 1 if the job was found in the queue, else 0.
local id = ARGV[1]
local found = redis.call('ZREM', KEYS[1], id) + redis.call('ZREM', KEYS[2], id)
  + redis.call('ZREM', KEYS[3], id)
local held = redis.call('HGET', KEYS[4], id)
if held then
  local consumer = string.sub(held, string.find(held, ' ', 1, true) + 1)
  redis.call('SREM', ARGV[2] .. consumer, ARGV[3] .. '\t' .. id)
  redis.call('HDEL', KEYS[4], id)
  found = found + 1
end
redis.call('HDEL', KEYS[5], id)
if found > 0 then return 1 end
return 0
