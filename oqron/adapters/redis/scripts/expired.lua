-- expired: leases of one queue whose deadline has passed (server clock).
--
-- KEYS[1] active  ZSET id -> lease deadline (ms)
-- KEYS[2] leases  HASH id -> "token consumer"
-- ARGV[1] max number of leases returned
-- ARGV[2] now in ms ("" = the server clock; tests pass a fake clock)
-- Returns a flat list id1, "token consumer", id2, ...
local function clock(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local now = clock(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, id in ipairs(ids) do
  local held = redis.call('HGET', KEYS[2], id)
  if held then
    table.insert(out, id)
    table.insert(out, held)
  end
end
return out
