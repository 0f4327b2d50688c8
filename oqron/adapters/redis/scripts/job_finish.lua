-- job_finish: record the end of an attempt and settle its lease, in one round trip.
--
-- The record is written only if it still carries this attempt's lease token (a stale worker
-- changes nothing); then the lease is dropped and the job forgotten (ack) or put back (nack).
--
--!include lib.lua
-- KEYS[1..7] the queue's keys (lib's q table order), KEYS[8] the holder's consumer set
-- ARGV[1] prefix of record keys   ARGV[2] job id        ARGV[3] lease token
-- ARGV[4] "ack" or "nack"          ARGV[5] nack delay ms ARGV[6] queue name
-- ARGV[7] now in ms ("" = server clock)                  ARGV[8] timeline entry (JSON)
-- ARGV[9..] field/value pairs to set (encoded; status raw)
-- Returns {0} when the attempt no longer owns the record, else {1, lease still current (1/0),
-- children_ids as JSON lines}.
local q = queue_keys(KEYS)
local prefix, id, token = ARGV[1], ARGV[2], ARGV[3]
local key = prefix .. 'job:' .. id
local status = redis.call('HGET', key, 'status')
if not status or redis.call('HGET', key, 'lease_token') ~= cjson.encode(token) then return {0} end
local new_status = status
local sets = {unpack(ARGV, 9)}
for j = 1, #sets, 2 do
  if sets[j] == 'status' then new_status = sets[j + 1] end
end
local now = clock(ARGV[7])
redis.call('HSET', key, unpack(sets))
append_lines(key, 'timeline', 100, ARGV[8])
move_index(prefix, id, redis.call('HGET', key, 'queue'), status, new_status, now)
local current = 0
if end_lease(q, ARGV[6], id, token, KEYS[8]) then
  settle(q, id, ARGV[4], tonumber(ARGV[5]), now)
  current = 1
end
return {1, current, redis.call('HGET', key, 'children_ids') or ''}
