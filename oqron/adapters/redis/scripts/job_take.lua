-- job_take: claim the next runnable job and start its attempt, in one round trip.
--
-- Like claim.lua, then on the claimed record: a missing or finished record is dropped (ack),
-- a record of another project/environment is handed back untouched for a while, anything
-- else becomes active for a new attempt (attempts_made + 1, lease token, worker, timeline).
--
--!include lib.lua
--!include job_lib.lua
-- KEYS and ARGV: as take_job in job_lib.lua.
return take_job(KEYS, ARGV)
