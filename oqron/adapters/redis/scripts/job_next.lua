-- job_next: finish one attempt and take the next jobs, in one round trip (a busy child's loop).
--
--!include lib.lua
--!include job_lib.lua
-- ARGV[1] number of keys of the finish part (nk), ARGV[2] number of its arguments (na),
-- ARGV[3] how many jobs to take at most
-- KEYS[1..nk] and ARGV[4..3+na]: finish_attempt's keys and arguments
-- KEYS[nk+1..] and ARGV[4+na..]: take_jobs' keys and arguments
-- Returns {finish_attempt's reply, take_jobs' reply}.
local nk, na, count = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local fa, ta = {unpack(ARGV, 4, 3 + na)}, {unpack(ARGV, 4 + na)}
local now = fmt(clock(fa[7]))  -- one reading of the clock for both halves
fa[7], ta[4] = now, now
local finished = finish_attempt({unpack(KEYS, 1, nk)}, fa)
if finished[1] == 0 then return {finished, {{'', -1}}} end  -- stale: the caller claims afresh
return {finished, take_jobs({unpack(KEYS, nk + 1)}, ta, count)}
