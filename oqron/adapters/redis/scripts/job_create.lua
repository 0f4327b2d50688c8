-- job_create: insert job records that do not exist yet (idempotent job ids).
--
--!include lib.lua
-- Keys are built from the prefix because a record's index keys depend on its queue and status.
-- ARGV[1] prefix
-- then per record: id, queue, status, field count n, then n field/value pairs
-- Returns one flag per record: 1 inserted, 0 already present (left untouched).
local prefix, now = ARGV[1], clock('')
local out = {}
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i + 3])
  local fields = {unpack(ARGV, i + 4, i + 3 + 2 * n)}
  table.insert(out, create_record(prefix, ARGV[i], ARGV[i + 1], ARGV[i + 2], fields, now) and 1 or 0)
  i = i + 4 + 2 * n
end
return out
