-- lock_renew / lock_release: act only if ARGV[1] still owns the lock.
--
-- KEYS[1] lock  STRING owner, with a TTL
-- ARGV[1] owner
-- ARGV[2] ttl in ms to extend by, or "release" to delete the lock
-- Returns 1 if done, 0 if the lock is held by someone else or free.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == 'release' then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
