-- job_update: atomic field updates of one record, guarded by expectations.
--
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
local i = 3
local n_set = tonumber(ARGV[i])
local set_at = i + 1
i = i + 1 + 2 * n_set
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
if n_set > 0 then
  local args = {}
  for j = 0, n_set - 1 do
    local f, v = ARGV[set_at + 2 * j], ARGV[set_at + 1 + 2 * j]
    if f == 'status' then new_status = v end
    table.insert(args, f)
    table.insert(args, v)
  end
  redis.call('HSET', key, unpack(args))
end
local n_append = tonumber(ARGV[i])
for j = 0, n_append - 1 do
  local f, cap, entries = ARGV[i + 1 + 3 * j], tonumber(ARGV[i + 2 + 3 * j]), ARGV[i + 3 + 3 * j]
  local old = redis.call('HGET', key, f)
  local text = entries
  if old and old ~= '' then text = old .. '\n' .. entries end
  local _, newlines = string.gsub(text, '\n', '')
  local excess = newlines + 1 - cap
  local pos = 1
  while excess > 0 do
    pos = string.find(text, '\n', pos, true) + 1
    excess = excess - 1
  end
  if pos > 1 then text = string.sub(text, pos) end
  redis.call('HSET', key, f, text)
end
if new_status and new_status ~= current then
  local queue = redis.call('HGET', key, 'queue')
  local t = redis.call('TIME')
  local now = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  redis.call('ZREM', prefix .. 'jobs:' .. queue .. ':' .. current, id)
  redis.call('ZADD', prefix .. 'jobs:' .. queue .. ':' .. new_status, now, id)
end
return 1
