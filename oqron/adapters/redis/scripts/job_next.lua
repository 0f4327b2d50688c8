-- job_next: finish one attempt and take the next job, in one round trip (a busy child's loop).
--
--!include lib.lua
--!include job_lib.lua
-- ARGV[1] number of keys of the finish part (nk), ARGV[2] number of its arguments (na)
-- KEYS[1..nk] and ARGV[3..2+na]: finish_attempt's keys and arguments
-- KEYS[nk+1..] and ARGV[3+na..]: take_job's keys and arguments
-- Returns {finish_attempt's reply, take_job's reply}.
local nk, na = tonumber(ARGV[1]), tonumber(ARGV[2])
local fa, ta = {unpack(ARGV, 3, 2 + na)}, {unpack(ARGV, 3 + na)}
local now = fmt(clock(fa[7]))  -- one reading of the clock for both halves
fa[7], ta[4] = now, now
local finished = finish_attempt({unpack(KEYS, 1, nk)}, fa)
if finished[1] == 0 then return {finished, {'', -1}} end  -- stale: the caller claims afresh
local taken = take_job({unpack(KEYS, nk + 1)}, ta)
return {finished, taken}
