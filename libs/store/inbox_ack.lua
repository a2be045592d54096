-- Mark notifications read (everything up to an id, and/or single ids) and tell the user's
-- other connections.
-- KEYS[1] inbox     the user's inbox stream
-- KEYS[2] read      the read mark hash (upto)
-- KEYS[3] read_ids  notifications read one by one (set)
-- ARGV[1] channel   the user's channel
-- ARGV[2] upto      mark everything up to this id read ('' = none)
-- ARGV[3..] ids     single ids to mark read
-- Returns the unread count.
-- @include offsets.lua
-- @include inbox_unread.lua
local upto = redis.call('HGET', KEYS[2], 'upto') or '0-0'
if ARGV[2] ~= '' and newer(ARGV[2], upto) then
  upto = ARGV[2]
  redis.call('HSET', KEYS[2], 'upto', upto)
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
    if not newer(id, upto) then redis.call('SREM', KEYS[3], id) end
  end
end
local marked = {}
for i = 3, #ARGV do
  if newer(ARGV[i], upto) then
    redis.call('SADD', KEYS[3], ARGV[i])
    table.insert(marked, ARGV[i])
  end
end
local count = unread(KEYS[1], KEYS[2], KEYS[3])
local ids = '[]'
if #marked > 0 then ids = cjson.encode(marked) end
redis.call(PUB, ARGV[1], '{"type":"system_message","data":{"kind":"notifications_read",' ..
           '"upto":"' .. upto .. '","ids":' .. ids .. ',"unread":' .. count .. '}}')
return count
