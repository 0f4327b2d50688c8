-- job_update: atomic field updates of one record, guarded by expectations.
--
--!include lib.lua
-- {prefix}job:{id} HASH; a status change moves the id between {prefix}jobs:{queue}:{status}
-- index sets (keys built here: the old status is only known inside the script).
-- ARGV[1] prefix
-- ARGV[2] job id
-- ARGV[3] n_set, then n_set field/value pairs (values already encoded; status raw)
-- then n_expect, then n_expect field/value pairs: the stored value must equal it (a missing
--   field matches the encoded null "null")
-- then n_status, then n_status statuses: the current status must be one of them (0 = any)
-- then n_append, then n_append triples field, cap, entries: entries are newline-separated
--   JSON appended to the field's JSON lines; the oldest lines beyond cap are dropped
-- Returns 1 if updated, 0 if the record is missing or an expectation failed.
local prefix, id = ARGV[1], ARGV[2]
local key = prefix .. 'job:' .. id
local current = redis.call('HGET', key, 'status')
if not current then return 0 end
local n_set = tonumber(ARGV[3])
local sets = {unpack(ARGV, 4, 3 + 2 * n_set)}
local i = 4 + 2 * n_set
local n_expect = tonumber(ARGV[i])
for j = 0, n_expect - 1 do
  local stored = redis.call('HGET', key, ARGV[i + 1 + 2 * j]) or 'null'
  if stored ~= ARGV[i + 2 + 2 * j] then return 0 end
end
i = i + 1 + 2 * n_expect
local n_status = tonumber(ARGV[i])
if n_status > 0 then
  local ok = false
  for j = 1, n_status do
    if ARGV[i + j] == current then ok = true end
  end
  if not ok then return 0 end
end
i = i + 1 + n_status
local new_status = nil
for j = 1, #sets, 2 do
  if sets[j] == 'status' then new_status = sets[j + 1] end
end
if n_set > 0 then redis.call('HSET', key, unpack(sets)) end
local n_append = tonumber(ARGV[i])
for j = 0, n_append - 1 do
  append_lines(key, ARGV[i + 1 + 3 * j], tonumber(ARGV[i + 2 + 3 * j]), ARGV[i + 3 + 3 * j])
end
if new_status and new_status ~= current then
  move_index(prefix, id, redis.call('HGET', key, 'queue'), current, new_status, clock(''))
end
return 1
