-- job_finish: record the end of an attempt and settle its lease, in one round trip.
--
-- The record is written only if it still carries this attempt's lease token (a stale worker
-- changes nothing); then the lease is dropped and the job forgotten (ack) or put back (nack).
--
--!include lib.lua
--!include job_lib.lua
-- KEYS and ARGV: as finish_attempt in job_lib.lua.
return finish_attempt(KEYS, ARGV)
