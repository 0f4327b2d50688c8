-- claim: lease the first ready job of the first unpaused queue that has one.
--
-- Due delayed jobs are promoted to ready in the same call, so promotion is atomic with the
-- claim. The lease is recorded three ways: the deadline in `active`, the token and holder in
-- `leases`, and the job in the consumer's set (so the master can find a job a child claimed
-- a moment before it died).
--
--!include lib.lua
-- KEYS[1] consumer set   SET  "queue<TAB>id" of every lease this consumer holds
-- KEYS[2] token counter  STRING, INCR gives each lease a unique token
-- then 7 keys per queue (lib's q table order)
-- ARGV[1] consumer id
-- ARGV[2] lease ttl in ms
-- ARGV[3] max delayed jobs promoted per queue in one call
-- ARGV[4] now in ms ("" = the server clock; tests pass a fake clock)
-- ARGV[5..] queue names, same order as the key groups
-- Returns {queue name, job id, token} on success, or {"", ms until the next delayed job is
-- due (-1 if none)} when nothing could be claimed.
local consumer, ttl, limit, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), clock(ARGV[4])
local next_due = -1
for n = 0, #ARGV - 5 do
  local q = queue_keys({unpack(KEYS, 3 + n * 7, 9 + n * 7)})
  if redis.call('HGET', q.meta, 'paused') ~= '1' then
    promote_due(q, now, limit)
    local popped = redis.call('ZPOPMIN', q.ready)
    if popped[1] then
      local token = take_leases(q, ARGV[5 + n], {popped[1]}, consumer, KEYS[1], KEYS[2], now + ttl)[1]
      if redis.call('ZCARD', q.ready) > 0 then redis.call('ZADD', q.marker, 0, 'm') end
      return {ARGV[5 + n], popped[1], token}
    end
    local first = redis.call('ZRANGE', q.delayed, 0, 0, 'WITHSCORES')
    if first[2] then
      local wait = math.max(0, tonumber(first[2]) - now)
      if next_due < 0 or wait < next_due then next_due = wait end
    end
  end
end
return {'', next_due}
