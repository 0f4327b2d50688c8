-- renew: push back the deadline of many leases in one call (the master renews for all children).
--
-- KEYS[2i-1] active  ZSET of the i-th lease's queue
-- KEYS[2i]   leases  HASH of the i-th lease's queue
-- ARGV[1]    lease ttl in ms
-- ARGV[2]    now in ms ("" = the server clock; tests pass a fake clock)
-- ARGV[2i+1], ARGV[2i+2]  job id and token of the i-th lease
-- Returns the 1-based indexes of the leases that are no longer current (not renewed).
local ttl = tonumber(ARGV[1])
local function clock(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local deadline = string.format('%.0f', clock(ARGV[2]) + ttl)
local lost = {}
for i = 1, #KEYS / 2 do
  local id, token = ARGV[2 * i + 1], ARGV[2 * i + 2]
  local held = redis.call('HGET', KEYS[2 * i], id)
  if held and string.sub(held, 1, #token + 1) == token .. ' ' then
    redis.call('ZADD', KEYS[2 * i - 1], 'XX', deadline, id)
  else
    table.insert(lost, i)
  end
end
return lost
