-- job_create: insert job records that do not exist yet (idempotent job ids).
--
-- Keys are built from the prefix because a record's index keys depend on its queue and status:
--   {prefix}job:{id}              HASH   the record; id/queue/status raw, other fields JSON
--   {prefix}jobs:{queue}:{status} ZSET   id -> ms when the job entered the status
--   {prefix}jobs:{queue}:all      ZSET   id -> ms of creation
--   {prefix}queues                SET    every queue name that has had a record
-- ARGV[1] prefix
-- then per record: id, queue, status, field count n, then n field/value pairs
-- Returns one flag per record: 1 inserted, 0 already present (left untouched).
local prefix = ARGV[1]
local t = redis.call('TIME')
local now = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local out = {}
local i = 2
while i <= #ARGV do
  local id, queue, status, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local key = prefix .. 'job:' .. id
  if redis.call('EXISTS', key) == 1 then
    table.insert(out, 0)
  else
    local args = {'id', id, 'queue', queue, 'status', status}
    for j = 0, n - 1 do
      table.insert(args, ARGV[i + 4 + 2 * j])
      table.insert(args, ARGV[i + 5 + 2 * j])
    end
    redis.call('HSET', key, unpack(args))
    redis.call('ZADD', prefix .. 'jobs:' .. queue .. ':' .. status, now, id)
    redis.call('ZADD', prefix .. 'jobs:' .. queue .. ':all', now, id)
    redis.call('SADD', prefix .. 'queues', queue)
    table.insert(out, 1)
  end
  i = i + 4 + 2 * n
end
return out
