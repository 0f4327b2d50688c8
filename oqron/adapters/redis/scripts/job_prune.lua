-- job_prune: delete the oldest records of one queue and status, at most a batch per call.
--
-- KEYS[1] {prefix}jobs:{queue}:{status}  ZSET id -> ms the job entered the status
-- KEYS[2] {prefix}jobs:{queue}:all       ZSET
-- ARGV[1] prefix (record keys are {prefix}job:{id})
-- ARGV[2] keep: how many of the newest to keep (-1 = no count limit)
-- ARGV[3] age in ms: delete those that entered the status longer ago (-1 = no age limit)
-- ARGV[4] batch size
-- Returns how many records were deleted (the caller repeats while it equals the batch size).
local prefix, keep, age, batch = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local doomed = {}
local seen = {}
if keep >= 0 then
  local excess = redis.call('ZCARD', KEYS[1]) - keep
  if excess > 0 then
    for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, math.min(excess, batch) - 1)) do
      seen[id] = true
      table.insert(doomed, id)
    end
  end
end
if age >= 0 and #doomed < batch then
  local t = redis.call('TIME')
  local cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - age
  local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.0f', cutoff),
    'LIMIT', 0, batch)
  for _, id in ipairs(old) do
    if not seen[id] and #doomed < batch then table.insert(doomed, id) end
  end
end
for _, id in ipairs(doomed) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('DEL', prefix .. 'job:' .. id)
end
return #doomed
