-- lock_acquire: take a free or expired lock, or extend it for its current owner.
--
-- KEYS[1] lock   STRING owner, with a TTL
-- KEYS[2] epoch  STRING counter, +1 every time the lock changes hands (fencing token)
-- ARGV[1] owner
-- ARGV[2] ttl in ms
-- Returns the epoch, or -1 when another owner holds the lock.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(redis.call('GET', KEYS[2]) or '0')
end
if holder then return -1 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return redis.call('INCR', KEYS[2])
