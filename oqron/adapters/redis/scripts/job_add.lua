-- job_add: store new job records and publish them, in one round trip (storage and broker on
-- the same Redis). Ids already stored are left untouched and not published again.
--
--!include lib.lua
-- KEYS[1..7] the queue's keys (lib's q table order)
-- ARGV[1] prefix of record keys
-- ARGV[2] queue name
-- ARGV[3] strategy to remember ("" keeps the remembered one)
-- ARGV[4] priority, ARGV[5] delay in ms
-- ARGV[6] "1" to publish the stored ids, "0" to only store them (jobs waiting for parents)
-- ARGV[7] now in ms ("" = the server clock)
-- then per record: id, status, field count n, then n field/value pairs
-- Returns one flag per record: 1 stored (and published), 0 already present.
local q = queue_keys(KEYS)
local prefix, queue = ARGV[1], ARGV[2]
local priority, delay, publish, now = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6] == '1', clock(ARGV[7])
if publish then remember_strategy(q, ARGV[3]) end
local out = {}
local published = 0
local i = 8
while i <= #ARGV do
  local id, n = ARGV[i], tonumber(ARGV[i + 2])
  local fields = {unpack(ARGV, i + 3, i + 2 + 2 * n)}
  if create_record(prefix, id, queue, ARGV[i + 1], fields, now) then
    table.insert(out, 1)
    if publish and publish_one(q, id, priority, delay, now) then published = published + 1 end
  else
    table.insert(out, 0)
  end
  i = i + 3 + 2 * n
end
if published > 0 then redis.call('ZADD', q.marker, 0, 'm') end
return out
