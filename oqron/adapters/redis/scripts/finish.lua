-- finish: ack (drop the lease, forget the job), nack (give the job back, now or delayed) or
-- release (give it back to the head of its queue).
--
--!include lib.lua
-- KEYS[1..7] the queue's keys (lib's q table order)
-- KEYS[8]    consumer set of the lease holder
-- ARGV[1] job id
-- ARGV[2] lease token
-- ARGV[3] "ack", "nack" or "release"
-- ARGV[4] nack delay in ms (0 = ready now)
-- ARGV[5] queue name (member prefix in the consumer set)
-- ARGV[6] now in ms ("" = the server clock; tests pass a fake clock)
-- Returns 1, or 0 when the token is not the current lease (nothing is changed).
local q = queue_keys(KEYS)
if not end_lease(q, ARGV[5], ARGV[1], ARGV[2], KEYS[8]) then return 0 end
settle(q, ARGV[1], ARGV[3], tonumber(ARGV[4]), clock(ARGV[6]))
return 1
