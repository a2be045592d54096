"""Presence state changes, each an atomic Lua call on one Redis Cluster slot.

Two sides, applied in two phases per batch of events:

- USER_APPLY (the user's slot): a connection's status, meta and rooms, the
  user's aggregate status (most present of online > busy > away, else offline)
  and a user version bumped whenever that aggregate changes.
- ROOM_APPLY / ROOM_STATUS / ROOM_EXPIRE (the room's slot): which connections
  are in the room, the member list observers see, the room's presence version,
  and the frames: a `diff` on the room channel, the full `state` to a joining
  connection through its gateway's node channel (published first, same
  version, so the joiner can drop diffs the state already contains).

Order-independence: every change of a connection carries its per-connection
`seq`; a room applies a join or leave only if its seq is newer than what it
holds (the connection's record, or the tombstone of its last leave), and a
member view takes status and meta only from a newer user version. Applying an
event twice changes nothing and publishes nothing.

Room channel payloads for presence are `- <version> <frame>` (room messages
are `<offset> <frame>`); node channel state payloads are
`S <conn>\\n<room>\\n<version>\\n<frame>`.
"""

# Shared Lua: the member view, built by hand so equal views are equal strings.
_VIEW = """
local function view(user, name, status, count, meta)
  local n = 'null'
  if name ~= '' then n = cjson.encode(name) end
  return '{"user":{"id":' .. cjson.encode(user) .. ',"name":' .. n .. '},"status":"' .. status ..
         '","connections":' .. count .. ',"meta":' .. meta .. '}'
end
local function diff_frame(room, version, kind, items)
  local parts = {joins = '', leaves = '', updates = ''}
  parts[kind] = table.concat(items, ',')
  return '{"type":"presence_update","room":' .. cjson.encode(room) ..
         ',"data":{"kind":"diff","version":' .. version .. ',"joins":[' .. parts.joins ..
         '],"leaves":[' .. parts.leaves .. '],"updates":[' .. parts.updates .. ']}}'
end
local function publish_diff(channel, room, version, kind, items)
  redis.call('PUBLISH', channel, '- ' .. version .. ' ' .. diff_frame(room, version, kind, items))
end
"""

USER_APPLY = """
-- KEYS: uc (hash), uv (counter), cr (conn's rooms), ug (conn tombstone), ls (last seen)
-- ARGV: kind, conn, seq, status, meta, room, event ts (ms), tomb_ttl_s
local kind, conn, seq = ARGV[1], ARGV[2], tonumber(ARGV[3])
local rank = {online = 3, busy = 2, away = 1}
local function aggregate()
  local best, best_rank, meta, meta_ts = 'offline', 0, '{}', -1
  local vals = redis.call('HVALS', KEYS[1])
  for _, v in ipairs(vals) do
    local s, st, ts, m = string.match(v, '^(%d+)|(%a+)|(%d+)|(.*)$')
    if rank[st] and rank[st] > best_rank then best, best_rank = st, rank[st] end
    if tonumber(ts) > meta_ts then meta, meta_ts = m, tonumber(ts) end
  end
  return best, meta
end
local before, before_meta = aggregate()
local conn_rooms = {}
if redis.call('EXISTS', KEYS[4]) == 1 then
  if kind ~= 'disconnect' then
    return {'gone', before, before_meta, tonumber(redis.call('GET', KEYS[2]) or '0'), {}, {}}
  end
elseif kind == 'disconnect' then
  redis.call('SET', KEYS[4], seq, 'EX', ARGV[8])
  redis.call('HDEL', KEYS[1], conn)
  conn_rooms = redis.call('SMEMBERS', KEYS[3])
  redis.call('DEL', KEYS[3])
else
  local cur = redis.call('HGET', KEYS[1], conn)
  local cseq = -1
  if cur then cseq = tonumber(string.match(cur, '^(%d+)|')) end
  if kind == 'connect' or kind == 'status' then
    if seq > cseq then
      redis.call('HSET', KEYS[1], conn, seq .. '|' .. ARGV[4] .. '|' .. ARGV[7] .. '|' .. ARGV[5])
    end
  elseif kind == 'join' or kind == 'leave' then
    if not cur then  -- seen before its connect: online until the connect says more
      redis.call('HSET', KEYS[1], conn, '0|online|0|{}')
    end
    if kind == 'join' then redis.call('SADD', KEYS[3], ARGV[6])
    else redis.call('SREM', KEYS[3], ARGV[6]) end
  end
end
local after, after_meta = aggregate()
local version = tonumber(redis.call('GET', KEYS[2]) or '0')
local user_rooms = {}
if after ~= before or after_meta ~= before_meta then
  version = redis.call('INCR', KEYS[2])
  if after == 'offline' then redis.call('SET', KEYS[5], ARGV[7]) end
  -- the rooms of the user's remaining connections show the new status
  local prefix = string.sub(KEYS[3], 1, #KEYS[3] - #conn)
  local seen = {}
  for _, c in ipairs(redis.call('HKEYS', KEYS[1])) do
    for _, r in ipairs(redis.call('SMEMBERS', prefix .. c)) do
      if not seen[r] then seen[r] = true; table.insert(user_rooms, r) end
    end
  end
end
return {before, after, after_meta, version, conn_rooms, user_rooms}
"""

ROOM_APPLY = _VIEW + """
-- KEYS: pc, pm, pn, pu, pl, pv, pt (this conn's tombstone)
-- ARGV: conn, seq, present, user, name, status, meta, user_version, now_ms, grace_ms,
--       room channel, room, node channel ('' = send no state), tomb_ttl_s
local conn, seq, user = ARGV[1], tonumber(ARGV[2]), ARGV[4]
local tomb = redis.call('GET', KEYS[7])
if tomb and tonumber(tomb) >= seq then return {0} end
local cur = redis.call('HGET', KEYS[1], conn)
if cur and tonumber(string.match(cur, '^(%d+)|')) >= seq then return {0} end
local present = ARGV[3] == '1'
local delta = 0
if present then
  redis.call('HSET', KEYS[1], conn, seq .. '|' .. user)
  if not cur then delta = 1 end
else
  if cur then redis.call('HDEL', KEYS[1], conn); delta = -1 end
  redis.call('SET', KEYS[7], seq, 'EX', ARGV[14])
end
local count = tonumber(redis.call('HGET', KEYS[3], user) or '0')
if delta ~= 0 then
  count = tonumber(redis.call('HINCRBY', KEYS[3], user, delta))
  if count <= 0 then redis.call('HDEL', KEYS[3], user); count = 0 end
end
local visible = redis.call('HGET', KEYS[2], user)
local status, meta, name = ARGV[6], ARGV[7], ARGV[5]
local uver = tonumber(ARGV[8])
local shown = tonumber(redis.call('HGET', KEYS[4], user) or '-1')
if visible then
  local old = cjson.decode(visible)
  if name == '' and old.user.name ~= cjson.null then name = old.user.name end
  if shown > uver then status, meta = old.status, cjson.encode(old.meta) end
end
if status == 'offline' then status = 'online' end
local kind, item = nil, nil
if count > 0 then
  redis.call('ZREM', KEYS[5], user)
  local v = view(user, name, status, count, meta)
  if not visible then kind = 'joins' elseif v ~= visible then kind = 'updates' end
  if kind then
    redis.call('HSET', KEYS[2], user, v)
    if uver > shown then redis.call('HSET', KEYS[4], user, uver) end
    item = v
  end
elseif visible then
  if tonumber(ARGV[10]) <= 0 then
    redis.call('HDEL', KEYS[2], user)
    redis.call('HDEL', KEYS[4], user)
    kind, item = 'leaves', visible
  else
    redis.call('ZADD', KEYS[5], tonumber(ARGV[9]) + tonumber(ARGV[10]), user)
  end
end
local version = tonumber(redis.call('GET', KEYS[6]) or '0')
if kind then version = redis.call('INCR', KEYS[6]) end
if present and not cur and ARGV[13] ~= '' then
  local members = redis.call('HVALS', KEYS[2])
  local frame = '{"type":"presence_update","room":' .. cjson.encode(ARGV[12]) ..
    ',"data":{"kind":"state","version":' .. version .. ',"members":[' ..
    table.concat(members, ',') .. ']}}'
  redis.call('PUBLISH', ARGV[13], 'S ' .. conn .. '\\n' .. ARGV[12] .. '\\n' .. version ..
             '\\n' .. frame)
end
if kind then
  publish_diff(ARGV[11], ARGV[12], version, kind, {item})
  return {1, kind, item, version}
end
return {1, '', '', version}
"""

ROOM_STATUS = _VIEW + """
-- KEYS: pm, pn, pu, pv; ARGV: user, status, meta, user_version, room channel, room
local user, uver = ARGV[1], tonumber(ARGV[4])
local visible = redis.call('HGET', KEYS[1], user)
local count = tonumber(redis.call('HGET', KEYS[2], user) or '0')
local shown = tonumber(redis.call('HGET', KEYS[3], user) or '-1')
if not visible or count == 0 or shown >= uver or ARGV[2] == 'offline' then return {0} end
local old = cjson.decode(visible)
local name = ''
if old.user.name ~= cjson.null then name = old.user.name end
local v = view(user, name, ARGV[2], count, ARGV[3])
redis.call('HSET', KEYS[3], user, uver)
if v == visible then return {0} end
redis.call('HSET', KEYS[1], user, v)
local version = redis.call('INCR', KEYS[4])
publish_diff(ARGV[5], ARGV[6], version, 'updates', {v})
return {1, v, version}
"""

ROOM_EXPIRE = _VIEW + """
-- KEYS: pm, pn, pu, pl, pv; ARGV: now_ms, room channel, room
local due = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[1])
local leaves = {}
for _, user in ipairs(due) do
  redis.call('ZREM', KEYS[4], user)
  local count = tonumber(redis.call('HGET', KEYS[2], user) or '0')
  local visible = redis.call('HGET', KEYS[1], user)
  if count == 0 and visible then
    redis.call('HDEL', KEYS[1], user)
    redis.call('HDEL', KEYS[3], user)
    table.insert(leaves, visible)
  end
end
local version = 0
if #leaves > 0 then
  version = redis.call('INCR', KEYS[5])
  publish_diff(ARGV[2], ARGV[3], version, 'leaves', leaves)
end
local nxt = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
return {leaves, nxt[2] or ''}
"""
