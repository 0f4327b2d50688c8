-- drain: remove every ready and delayed job of a queue (leased jobs stay).
--
-- KEYS[1] ready, KEYS[2] delayed, KEYS[3] prio
-- Returns the removed ids, ready ones first in claim order, then delayed ones by due time.
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do table.insert(ids, id) end
for i = 1, #ids, 1000 do
  redis.call('HDEL', KEYS[3], unpack(ids, i, math.min(i + 999, #ids)))
end
redis.call('DEL', KEYS[1], KEYS[2])
return ids
