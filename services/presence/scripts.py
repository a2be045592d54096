"""Presence state changes, each an atomic Lua call on one Redis Cluster slot.

Two sides, applied in two phases per batch of events:

- USER_APPLY (the user's slot): a connection's status, meta and rooms, the
  user's aggregate status (most present of online > busy > away, else offline)
  and a user version bumped whenever that aggregate changes.
- ROOM_APPLY / ROOM_STATUS (the room's slot): which connections are in the
  room and the member list observers see. They publish nothing as they
  change it: they note what changed (below). The batch's last call on each
  room (flag `flush`) ends with `flush()`, which turns that into frames: ONE
  `diff` on the room channel carrying the room's next version, and, first, a note to
  each gateway with joiners (`P`, below) that their state is ready: the
  gateway reads the room in one MULTI (`goldwire.protocol.presence` says how
  it stays exact) and sends the state. Building a 1,000-member state in Lua,
  once per joiner, held Redis 2 ms per flush; the MULTI takes a tenth of that.
  The flush rides on a call the batch makes anyway, so coalescing costs no
  extra round trip or script call. ROOM_EXPIRE (pending
  leaves whose grace ran out) ends with the same flush.

Coalescing (one diff per room per batch, each user at most once with their
final view): observers of a busy room used to get one frame per event, so a
room of n members filling up cost O(n^2) frames. Two hashes on the room's slot
hold what has changed since the room's last published version:

- `pd` (pending diff) user -> the member view observers last saw ('' = not a
  member). The first script that changes a user's view writes it (HSETNX);
  later changes keep the first. The flush compares it with the view now:
  visible now and '' before -> `joins`; visible before and now but different
  -> `updates`; '' now and visible before -> `leaves` (with the view observers
  knew); came and went, or changed and changed back -> nothing.
- `ps` (pending states) conn -> node channel: joiners waiting for a state.

Why pending data in Redis rather than a snapshot kept by the process and a
compare at the end: a change is committed by one script, its frame published
by a later one (the flush). If the process dies in between, the batch is
redelivered (the stream is at-least-once) and its events are then no-ops
(their seqs are already applied), so a snapshot taken in memory by the second
run would see no change and the diff would be lost. The `pd`/`ps` hashes
survive the crash: the redelivered batch touches the same rooms, its last
call on each still flushes though its event is a no-op, and that flush (or
any later flush of the room, by any replica, or its pending-leave expiry)
publishes exactly what is pending, once, since a flush reads, publishes and
deletes it atomically. A redelivered batch whose diff was already published
finds `pd` empty and publishes nothing. A redelivered status, connect or
disconnect calls the user's rooms again though the user's aggregate is
already stored, so a run that died between the two phases still shows it.
Replicas applying batches to one room concurrently share the hashes: whichever
flushes first publishes all that is pending, the other finds nothing.

Why states are announced by the flush and read with `pd`: a state taken halfway
through a batch can show a user who then leaves again in the same batch (the
combined diff, comparing before-batch with after-batch, would say nothing
about them: a ghost), or a view the batch then changes back. The gateway's
read takes `pm` with the changes still pending in `pd` taken back, and the
version: exactly the room at that version, whenever the read happens, and
every later diff is relative to it. Clients still
apply diffs as upserts (`joins`, `updates`) and deletes (`leaves`) keyed by
user id, which also makes a repeated state harmless.

Order-independence: every change of a connection carries its per-connection
`seq`; a room applies a join or leave only if its seq is newer than what it
holds (the connection's record, or the tombstone of its last leave), and a
member view takes status and meta only from a newer user version. Applying an
event twice changes nothing and publishes nothing.

Room channel payloads for presence are `- <version> <frame>` (room messages
are `<offset> <frame>`); node channel payloads for joiners are
`P <room>\\n<version>\\n<conn> <conn> ...`: read the room's state (its version
is this one or newer: a state read later is exact at its own version, and the
gateway drops the diffs it already contains). Both layouts are typed in
goldwire.protocol.channels, which gateways parse them with.
"""

# Shared Lua: the member view, built by hand so equal views are equal strings, and the
# flush of what a room's batch changed.
_VIEW = """
local function view(user, name, status, count, meta)
  local n = 'null'
  if name ~= '' then n = cjson.encode(name) end
  return '{"user":{"id":' .. cjson.encode(user) .. ',"name":' .. n .. '},"status":"' .. status ..
         '","connections":' .. count .. ',"meta":' .. meta .. '}'
end
-- pm: members, pv: version, pd: pending diff (user -> view seen before, '' = none),
-- ps: pending states (conn -> node channel), pc: connections present.
-- Announces the states of waiting joiners, then publishes one diff (if anything visible
-- changed). Returns the connections in the room.
local function flush(pm, pv, pd, ps, pc, channel, room)
  local pending = redis.call('HGETALL', pd)
  local joins, leaves, updates = {}, {}, {}
  if #pending > 0 then
    redis.call('DEL', pd)
    local before, users = {}, {}
    for i = 1, #pending, 2 do
      before[pending[i]] = pending[i + 1]
      table.insert(users, pending[i])
    end
    table.sort(users)
    for _, user in ipairs(users) do
      local was, now = before[user], redis.call('HGET', pm, user)
      if now then
        if was == '' then table.insert(joins, now)
        elseif now ~= was then table.insert(updates, now) end
      elseif was ~= '' then
        table.insert(leaves, was)
      end
    end
  end
  local changed = #joins + #leaves + #updates > 0
  local version
  if changed then version = redis.call('INCR', pv) end
  local waiting = redis.call('HGETALL', ps)
  if #waiting > 0 then
    version = version or tonumber(redis.call('GET', pv) or '0')
    redis.call('DEL', ps)
    local conns_of, nodes = {}, {}
    for i = 1, #waiting, 2 do
      local conn, node = waiting[i], waiting[i + 1]
      if redis.call('HEXISTS', pc, conn) == 1 then  -- still in the room
        if not conns_of[node] then conns_of[node] = {}; table.insert(nodes, node) end
        table.insert(conns_of[node], conn)
      end
    end
    table.sort(nodes)
    for _, node in ipairs(nodes) do
      redis.call('PUBLISH', node, 'P ' .. room .. '\\n' .. version .. '\\n' ..
                 table.concat(conns_of[node], ' '))
    end
  end
  if changed then
    redis.call('PUBLISH', channel, '- ' .. version .. ' ' ..
      '{"type":"presence_update","room":' .. cjson.encode(room) ..
      ',"data":{"kind":"diff","version":' .. version .. ',"joins":[' ..
      table.concat(joins, ',') .. '],"leaves":[' .. table.concat(leaves, ',') ..
      '],"updates":[' .. table.concat(updates, ',') .. ']}}')
  end
  return redis.call('HLEN', pc)  -- connections in the room: the pacer sizes the next wait
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
local again = false  -- this event was applied here before (redelivered, or late)
if redis.call('EXISTS', KEYS[4]) == 1 then
  if kind ~= 'disconnect' then
    return {'gone', before, before_meta, tonumber(redis.call('GET', KEYS[2]) or '0'), {}, {}}
  end
  -- A redelivered disconnect (the first run may have died before the rooms were left):
  -- the connection's rooms are kept as long as its tombstone, so it can finish the job.
  conn_rooms = redis.call('SMEMBERS', KEYS[3])
  again = true
elseif kind == 'disconnect' then
  redis.call('SET', KEYS[4], seq, 'EX', ARGV[8])
  redis.call('HDEL', KEYS[1], conn)
  conn_rooms = redis.call('SMEMBERS', KEYS[3])
  redis.call('EXPIRE', KEYS[3], ARGV[8])
else
  local cur = redis.call('HGET', KEYS[1], conn)
  local cseq = -1
  if cur then cseq = tonumber(string.match(cur, '^(%d+)|')) end
  if kind == 'connect' or kind == 'status' then
    if seq > cseq then
      redis.call('HSET', KEYS[1], conn, seq .. '|' .. ARGV[4] .. '|' .. ARGV[7] .. '|' .. ARGV[5])
    else
      again = true
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
local changed = after ~= before or after_meta ~= before_meta
if changed then
  version = redis.call('INCR', KEYS[2])
  if after == 'offline' then redis.call('SET', KEYS[5], ARGV[7]) end
end
-- The rooms of the user's remaining connections show the status: after a change, and
-- again when this event was applied here before, since a run that died after this
-- script but before the rooms' (or a retried batch) finds the change already made.
-- ROOM_STATUS takes a user version once, so showing it again changes nothing.
if changed or again then
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
-- KEYS: pc, pm, pn, pu, pl, pv, pt (this conn's tombstone), pd, ps
-- ARGV: conn, seq, present, user, name, status, meta, user_version, now_ms, grace_ms,
--       node channel ('' = send no state), tomb_ttl_s,
--       flush ('1' for the batch's last call on the room), room channel, room
-- Returns {0} for a stale or repeated event, else {1, kind, view} where kind is what this
-- event alone did to the member ('joins', 'leaves', 'updates' or ''). With flush, the
-- room's pending frames are published after the event, even when it was a no-op (a
-- redelivered batch so publishes what a run that died before its flush left pending), and
-- the connections in the room are appended (the pacer sizes the room's next wait by it).
local function apply()
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
    redis.call('SET', KEYS[7], seq, 'EX', ARGV[12])
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
      redis.call('HSETNX', KEYS[8], user, visible or '')
      redis.call('HSET', KEYS[2], user, v)
      if uver > shown then redis.call('HSET', KEYS[4], user, uver) end
      item = v
    end
  elseif visible then
    if tonumber(ARGV[10]) <= 0 then
      redis.call('HSETNX', KEYS[8], user, visible)
      redis.call('HDEL', KEYS[2], user)
      redis.call('HDEL', KEYS[4], user)
      kind, item = 'leaves', visible
    else
      redis.call('ZADD', KEYS[5], tonumber(ARGV[9]) + tonumber(ARGV[10]), user)
    end
  end
  if present and not cur and ARGV[11] ~= '' then
    redis.call('HSET', KEYS[9], conn, ARGV[11])  -- its state comes with the flush
  end
  return {1, kind or '', item or ''}
end
local result = apply()
if ARGV[13] == '1' then
  table.insert(result, flush(KEYS[2], KEYS[6], KEYS[8], KEYS[9], KEYS[1], ARGV[14], ARGV[15]))
end
return result
"""

ROOM_STATUS = _VIEW + """
-- KEYS: pm, pn, pu, pd, pv, ps, pc
-- ARGV: user, status, meta, user_version, flush ('1' = last call on the room), room channel,
--       room
local function apply()
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
  redis.call('HSETNX', KEYS[4], user, visible)
  redis.call('HSET', KEYS[1], user, v)
  return {1, v}
end
local result = apply()
if ARGV[5] == '1' then
  table.insert(result, flush(KEYS[1], KEYS[5], KEYS[4], KEYS[6], KEYS[7], ARGV[6], ARGV[7]))
end
return result
"""

ROOM_EXPIRE = _VIEW + """
-- KEYS: pm, pn, pu, pl, pv, pd, ps, pc; ARGV: now_ms, room channel, room
-- The leaves are published by the flush, with anything else pending in the room.
-- Returns {leaves, the next pending leave's due time or '', connections in the room}.
local due = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[1])
local leaves = {}
for _, user in ipairs(due) do
  redis.call('ZREM', KEYS[4], user)
  local count = tonumber(redis.call('HGET', KEYS[2], user) or '0')
  local visible = redis.call('HGET', KEYS[1], user)
  if count == 0 and visible then
    redis.call('HSETNX', KEYS[6], user, visible)
    redis.call('HDEL', KEYS[1], user)
    redis.call('HDEL', KEYS[3], user)
    table.insert(leaves, visible)
  end
end
local size = flush(KEYS[1], KEYS[5], KEYS[6], KEYS[7], KEYS[8], ARGV[2], ARGV[3])
local nxt = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
return {leaves, nxt[2] or '', size}
"""
