-- doc_put: conditional write of one JSON document.
--
-- KEYS[1] {prefix}docs:{namespace}  HASH key -> JSON document
-- ARGV[1] document key
-- ARGV[2] new document (JSON; already carries _fence when ARGV[4] is given)
-- ARGV[3] expected fields as a JSON object of scalars, or "" for no expectation: the stored
--         document must exist and hold exactly these values
-- ARGV[4] fence epoch, or "": the stored document's _fence must be absent or <= it
-- Returns 1 if written, 0 if a condition failed.
local stored = redis.call('HGET', KEYS[1], ARGV[1])
local doc = nil
if stored then doc = cjson.decode(stored) end
if ARGV[3] ~= '' then
  if not doc then return 0 end
  for field, value in pairs(cjson.decode(ARGV[3])) do
    local have = doc[field]
    if have == nil then have = cjson.null end
    if have ~= value then return 0 end
  end
end
if ARGV[4] ~= '' and doc and doc['_fence'] and tonumber(doc['_fence']) > tonumber(ARGV[4]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
