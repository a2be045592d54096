"""Session and preference changes, each one atomic Lua call on the user's slot.

All of a user's session keys share the hash tag `{u/<tenant>/<user>}`, so a
session id is only ever looked up under the user presenting it: another
user's id simply does not exist there, and a new session is made.
"""

_OFFSET_CMP = """
local function newer(a, b)  -- offset a is after offset b
  local a1, a2 = string.match(a, '^(%d+)-(%d+)$')
  local b1, b2 = string.match(b, '^(%d+)-(%d+)$')
  if not a1 or not b1 then return a1 ~= nil end
  a1, a2, b1, b2 = tonumber(a1), tonumber(a2), tonumber(b1), tonumber(b2)
  return a1 > b1 or (a1 == b1 and a2 > b2)
end
"""

OPEN = """
-- KEYS: sessions (zset), s, sr, sc, sx of the requested id; s, sc of the new id
-- ARGV: requested id ('' = none), new id, conn, node, now_ms, ttl_ms, device
local now, ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local sid, s, sr, sc = ARGV[2], KEYS[6], nil, KEYS[7]
local resumed = 0
if ARGV[1] ~= '' and redis.call('EXISTS', KEYS[5]) == 0 and redis.call('EXISTS', KEYS[2]) == 1 then
  local expires = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if expires and tonumber(expires) > now then
    sid, s, sr, sc, resumed = ARGV[1], KEYS[2], KEYS[3], KEYS[4], 1
  end
end
if resumed == 0 then
  redis.call('HSET', s, 'id', sid, 'created', now, 'device', ARGV[7], 'state', '{}')
end
redis.call('HSET', s, 'last_seen', now)
redis.call('HSET', sc, ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[1], now + ttl, sid)
redis.call('PEXPIRE', s, ttl)
redis.call('PEXPIRE', sc, ttl)
local rooms = {}
if resumed == 1 then
  rooms = redis.call('HGETALL', sr)
  redis.call('PEXPIRE', sr, ttl)
end
return {sid, resumed, rooms, redis.call('HGET', s, 'state') or '{}'}
"""

EVENT = _OFFSET_CMP + """
-- KEYS: sessions (zset), s, sr, sc; ARGV: kind, sid, conn, room, offset, offsets (JSON
-- object or ''), now_ms, ttl_ms
local kind, now, ttl = ARGV[1], tonumber(ARGV[7]), tonumber(ARGV[8])
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end  -- expired or revoked
local function remember(room, offset)
  local cur = redis.call('HGET', KEYS[3], room)
  if not cur or newer(offset, cur) then redis.call('HSET', KEYS[3], room, offset) end
end
if kind == 'join' then
  remember(ARGV[4], ARGV[5])
elseif kind == 'leave' then
  redis.call('HDEL', KEYS[3], ARGV[4])
elseif kind == 'disconnect' then
  redis.call('HDEL', KEYS[4], ARGV[3])
  if ARGV[6] ~= '' then
    for room, offset in pairs(cjson.decode(ARGV[6])) do
      if redis.call('HEXISTS', KEYS[3], room) == 1 then remember(room, offset) end
    end
  end
end
redis.call('HSET', KEYS[2], 'last_seen', now)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
for i = 2, 4 do redis.call('PEXPIRE', KEYS[i], ttl) end
return 1
"""

SET_STATE = """
-- KEYS: s; ARGV: state JSON, now_ms
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'last_seen', ARGV[2])
return 1
"""

REVOKE = """
-- KEYS: sessions (zset), s, sr, sc, sx; ARGV: sid, tombstone ttl (s)
local existed = redis.call('EXISTS', KEYS[2])
local conns = redis.call('HGETALL', KEYS[4])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('SET', KEYS[5], '1', 'EX', ARGV[2])
return {existed, conns}
"""

EXPIRE = """
-- KEYS: sessions (zset), s, sr, sc; ARGV: sid, now_ms
local expires = redis.call('ZSCORE', KEYS[1], ARGV[1])
if expires and tonumber(expires) > tonumber(ARGV[2]) then return 0 end  -- slid meanwhile
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
return 1
"""

WRITE_PREFS = """
-- KEYS: preferences; ARGV: values JSON, expected version, user channel
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if tonumber(ARGV[2]) ~= version then
  return {0, redis.call('HGET', KEYS[1], 'values') or '{}', version}
end
version = version + 1
redis.call('HSET', KEYS[1], 'values', ARGV[1], 'version', version)
redis.call('PUBLISH', ARGV[3], '{"type":"system_message","data":{"kind":"preferences","values":' ..
           ARGV[1] .. ',"version":' .. version .. '}}')
return {1, ARGV[1], version}
"""

# --- the notifications inbox -----------------------------------------------------------

_UNREAD = _OFFSET_CMP + """
local function unread(inbox, readk, idsk)
  local upto = redis.call('HGET', readk, 'upto') or '0-0'
  local n = 0
  for _, e in ipairs(redis.call('XRANGE', inbox, '(' .. upto, '+')) do
    if redis.call('SISMEMBER', idsk, e[1]) == 0 then n = n + 1 end
  end
  return n
end
"""

NOTIFY = _UNREAD + """
-- KEYS: inbox, read, read ids, idempotency (or the inbox again when none)
-- ARGV: user channel, head ('{"type":"notification",...'), tail (',"data":...}'), maxlen,
--       min age id cutoff ms, ttl_ms, idempotency window ms ('0' = none)
if ARGV[7] ~= '0' then
  local prev = redis.call('GET', KEYS[4])
  if prev then return {prev, 1, unread(KEYS[1], KEYS[2], KEYS[3])} end
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', 't', ARGV[3])
redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[5])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[6]) end
local ms = string.match(id, '^(%d+)')
local count = unread(KEYS[1], KEYS[2], KEYS[3])
redis.call('PUBLISH', ARGV[1], ARGV[2] .. '"id":"' .. id .. '","ts":' .. ms ..
           ',"unread":' .. count .. ARGV[3])
if ARGV[7] ~= '0' then redis.call('SET', KEYS[4], id, 'PX', ARGV[7]) end
return {id, 0, count}
"""

ACK = _UNREAD + """
-- KEYS: inbox, read, read ids; ARGV: user channel, upto ('' = none), ids... (read one by one)
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
redis.call('PUBLISH', ARGV[1], '{"type":"system_message","data":{"kind":"notifications_read",' ..
           '"upto":"' .. upto .. '","ids":' .. ids .. ',"unread":' .. count .. '}}')
return count
"""
