-- job_delete: delete records and their index entries.
--
-- {prefix}job:{id} HASH, {prefix}jobs:{queue}:{status} and {prefix}jobs:{queue}:all ZSETs.
-- ARGV[1] prefix
-- ARGV[2..] job ids
-- Returns how many records existed.
local prefix = ARGV[1]
local deleted = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local key = prefix .. 'job:' .. id
  local fields = redis.call('HMGET', key, 'queue', 'status')
  if fields[1] then
    redis.call('ZREM', prefix .. 'jobs:' .. fields[1] .. ':' .. fields[2], id)
    redis.call('ZREM', prefix .. 'jobs:' .. fields[1] .. ':all', id)
    redis.call('DEL', key)
    deleted = deleted + 1
  end
end
return deleted
