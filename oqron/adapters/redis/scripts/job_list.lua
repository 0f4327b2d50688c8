-- job_list: one page of records from an index, newest first, in one round trip.
--
-- KEYS[1] index ZSET ({prefix}jobs:{queue}:{status} or {prefix}jobs:{queue}:all)
-- ARGV[1] prefix (record keys are {prefix}job:{id})
-- ARGV[2] offset, ARGV[3] limit
-- ARGV[4] "asc" for oldest first, anything else for newest first
-- Returns a list of {score, HGETALL of the record} (records deleted meanwhile are skipped).
local prefix, offset, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local command = 'ZREVRANGE'
if ARGV[4] == 'asc' then command = 'ZRANGE' end
local ids = redis.call(command, KEYS[1], offset, offset + limit - 1, 'WITHSCORES')
local out = {}
for i = 1, #ids, 2 do
  local fields = redis.call('HGETALL', prefix .. 'job:' .. ids[i])
  if #fields > 0 then table.insert(out, {ids[i + 1], fields}) end
end
return out
