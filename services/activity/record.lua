-- RECORD: one chunk of one tenant's events, each recorded exactly once (see scripts.py).
-- The tenant's fixed keys come by name. Its per-user, per-room, per-connection and per-time
-- keys are the tag .. a part (activity_keys.lua), all in the tag's hash slot, so in the
-- slot of these keys: which of them a chunk touches is known only inside the call (a
-- visit's time goes to every UTC day it spans, from a join stored by an earlier chunk).
-- KEYS[1] last_active     zset user -> last event ts (names the slot)
-- KEYS[2] room_index      zset room -> last event ts
-- KEYS[3] api_history     API use with neither user nor room
-- KEYS[4] live_conns      hash conn -> user\tnode
-- KEYS[5] live_members    hash room\tuser -> connections
-- KEYS[6] live_rooms      hash room -> members
-- KEYS[7] live_users      hash user -> connections
-- KEYS[8] live_nodes      hash node -> connections
-- KEYS[9] live_seconds    hash second -> messages
-- KEYS[10] dirty_minutes  zset minute -> version, for the roll-up
-- KEYS[11] dirty_days     zset day -> version, for the users roll-up
-- KEYS[12] users_overflow hash h<hour> / d<day> -> 1: exact set dropped
-- ARGV[1] tag             the tenant's key prefix `<prefix>:{a/<tenant>}`
-- ARGV[2] now             ms
-- ARGV[3] retention       ms: older events are not recorded
-- ARGV[4] exact_limit     distinct users an hour keeps exactly (then only the HLL)
-- ARGV[5] minute_ttl      s
-- ARGV[6] tomb_ttl        s a disconnected connection's rooms are kept
-- ARGV[7] hour_ttl        s
-- ARGV[8..] events        one packed event each (events.py)
-- @include activity_keys.lua
local F = tenant_keys(ARGV[1])
local K = {last_active = KEYS[1], room_index = KEYS[2], api_history = KEYS[3],
           live_conns = KEYS[4], live_members = KEYS[5], live_rooms = KEYS[6],
           live_users = KEYS[7], live_nodes = KEYS[8], live_seconds = KEYS[9],
           dirty_minutes = KEYS[10], dirty_days = KEYS[11], users_overflow = KEYS[12]}
local function fmt(n) return string.format('%d', n) end
local now = tonumber(ARGV[2])
local keep_ms = tonumber(ARGV[3])
local cutoff = now - keep_ms
local exact_limit = tonumber(ARGV[4])
local minute_ttl = tonumber(ARGV[5])
local tomb_ttl = tonumber(ARGV[6])
local hour_ttl = tonumber(ARGV[7])
local MSG = 16777216  -- user-day `em` = events + MSG * messages: one counter, one HINCRBY

-- Effects are gathered in tables and written once per key and field at the end;
-- strings are built once per chunk. Each redis.call costs, so there are few per event.
local incr, sets, maxes, user_days, room_entries = {}, {}, {}, {}, {}
local closed_days = {}  -- user-day keys a visit's time went to
local day_of = {}  -- user-day key -> its day
local function add(key, field, n)
  local h = incr[key]
  if not h then h = {}; incr[key] = h end
  h[field] = (h[field] or 0) + n
end
local function zmax(key, member, score)
  local h = maxes[key]
  if not h then h = {}; maxes[key] = h end
  if not h[member] or h[member] < score then h[member] = score end
end
local function cached(cache, k, make)
  local v = cache[k]
  if not v then v = make(k); cache[k] = v end
  return v
end
local minute_keys, kind_fields, type_fields, room_fields = {}, {}, {}, {}
local function mk_kind(k) return 'k:' .. k end
local function mk_type(t) return 't:' .. t end
local function mk_room(r) return 'r:' .. r end
local dirty_minutes, seconds = {}, {}  -- messages per second, written at the end
local function user_day(user, ts)
  local day = math.floor(ts / 86400000)
  local per_day = user_days[day]
  if not per_day then per_day = {}; user_days[day] = per_day end
  local key = per_day[user]
  if not key then
    key = F.user_day .. fmt(day) .. ':' .. user
    per_day[user] = key
    day_of[key] = day
  end
  return key
end

-- time in rooms and live state ---------------------------------------------------------
-- A connection's hash: room -> 'O|seq|ts' (in it since ts), 'L|seq|ts' (left at ts),
-- 'D|seq|ts' (joined at ts, the visit closed by the disconnect), and '~gone' ->
-- 'seq|ts' of its disconnect ('~' is not a room character). It outlives the
-- disconnect by the tombstone TTL, so events applied late (a claimed batch) still
-- find the visit: a late join after a leave or disconnect closes at the right time,
-- a late leave shortens a visit the disconnect closed. It is read once per chunk and
-- written back at the end.
local function close(user, room, start, finish, sign)
  local s = start
  while s < finish do  -- split over UTC days
    local e = math.min(finish, (math.floor(s / 86400000) + 1) * 86400000)
    local key = user_day(user, s)
    add(key, 't:' .. room, sign * (e - s))
    closed_days[key] = math.floor(s / 86400000)
    s = e
  end
end
local function parse_mark(v)
  local kind, seq, ts = string.match(v, '^(%a)|(%d+)|(%-?%d+)$')
  return kind, tonumber(seq), tonumber(ts)
end
local marks, marks_dirty, marks_reset = {}, {}, {}
local function marks_of(conn)
  local m = marks[conn]
  if not m then
    m = {}
    local all = redis.call('HGETALL', F.conn_rooms .. conn)
    for i = 1, #all, 2 do m[all[i]] = all[i + 1] end
    marks[conn] = m
  end
  return m
end
local function gone_of(m)  -- the connection's disconnect (seq, ts), if recorded
  local g = m['~gone']
  if not g then return nil, nil end
  local seq, ts = string.match(g, '^(%d+)|(%-?%d+)$')
  return tonumber(seq), tonumber(ts)
end
local function set_mark(conn, room, value)
  marks_of(conn)[room] = value
  local d = marks_dirty[conn]
  if not d then d = {}; marks_dirty[conn] = d end
  d[room] = true
end
local function mark(kind, seq, ts) return kind .. '|' .. fmt(seq) .. '|' .. fmt(ts) end
local function member(room, user, n)  -- live counters, applied as net deltas at the end
  add(K.live_members, room .. '\t' .. user, n)
end
-- Every step compares the connection's per-connection seq, so events applied late
-- or twice change nothing they should not.
local function on_join(user, conn, room, seq, ts, replay)
  local m = marks_of(conn)
  local v = m[room]
  local kind, s, t
  if v then kind, s, t = parse_mark(v) end
  if v and s > seq then  -- a later event of this room already seen
    if kind == 'L' and not replay then close(user, room, ts, t, 1) end
    return
  end
  local gseq, gts = gone_of(m)
  if gseq then  -- the disconnect came first: the visit ended there (unless a leave says)
    if not replay and gseq > seq then
      close(user, room, ts, gts, 1)
      set_mark(conn, room, mark('D', seq, ts))
    end
    return
  end
  if kind == 'O' then return end  -- already in the room (a replay)
  set_mark(conn, room, mark('O', seq, ts))
  member(room, user, 1)
end
local function on_leave(user, conn, room, seq, ts)
  local m = marks_of(conn)
  local v = m[room]
  local kind, s, t
  if v then
    kind, s, t = parse_mark(v)
    if s > seq then return end
  end
  local gseq, gts = gone_of(m)
  if gseq then
    if gseq > seq and kind == 'D' then  -- the visit ended here, not at the disconnect
      close(user, room, ts, gts, -1)
      set_mark(conn, room, mark('L', seq, ts))
    elseif gseq > seq and not kind then  -- its join comes later still
      set_mark(conn, room, mark('L', seq, ts))
    end
    return
  end
  if kind == 'O' then
    close(user, room, t, ts, 1)
    member(room, user, -1)
  end
  set_mark(conn, room, mark('L', seq, ts))  -- kept: its join may come later
end
local function on_connect(user, conn, node)
  if gone_of(marks_of(conn)) then return end
  if redis.call('HSETNX', K.live_conns, conn, user .. '\t' .. node) == 1 then
    add(K.live_users, user, 1)
    add(K.live_nodes, node, 1)
  end
end
local function on_disconnect(user, conn, node, seq, ts)
  local m = marks_of(conn)
  if gone_of(m) then return end  -- already ended (a sweep, or a second disconnect)
  for room, v in pairs(m) do
    local kind, s, t = parse_mark(v)
    if kind == 'O' then
      member(room, user, -1)
      if s < seq then
        close(user, room, t, ts, 1)
        m[room] = mark('D', s, t)
      end
    end
  end
  m['~gone'] = fmt(seq) .. '|' .. fmt(ts)
  marks_reset[conn] = true  -- rewritten whole, with the tombstone's TTL
  if redis.call('HDEL', K.live_conns, conn) == 1 then
    add(K.live_users, user, -1)
    add(K.live_nodes, node, -1)
  end
end

-- the events ---------------------------------------------------------------------------
-- conn, seq, replay, node, then the history entry, whose first fields are
-- id, kind, ts, user, room, type, api (see events.py)
local PATTERN = '^' .. string.rep('(.-)\31', 4) .. '(' .. string.rep('(.-)\31', 7) .. '.*)$'
local new, dup, old, replayed = 0, 0, 0, 0
for i = 8, #ARGV do
  local conn, seq, replay, node, member, _, kind, ts, user, room, typ, api =
    string.match(ARGV[i], PATTERN)
  ts, seq = tonumber(ts), tonumber(seq)
  if replay == 'r' then  -- re-announced after a Redis gap: rebuild live state only
    replayed = replayed + 1
    if kind == 'connect' then on_connect(user, conn, node)
    elseif kind == 'join' then on_join(user, conn, room, seq, ts, true) end
  elseif ts < cutoff then
    old = old + 1
  else
    local home
    if user ~= '' then home = F.user_history .. user
    elseif room ~= '' then home = F.room_history .. room
    else home = K.api_history end
    if redis.call('ZADD', home, 'NX', ts, member) == 0 then
      dup = dup + 1
    else
      new = new + 1
      local message = kind == 'publish' or kind == 'send'
      if user ~= '' and room ~= '' then  -- written per room after the loop
        local list = room_entries[room]
        if not list then list = {}; room_entries[room] = list end
        list[#list + 1] = ts
        list[#list + 1] = member
      end
      local minute = math.floor(ts / 60000)
      local mkey = minute_keys[minute]
      if not mkey then
        mkey = F.minute .. fmt(minute)
        minute_keys[minute] = mkey
        dirty_minutes[minute] = true
      end
      local counts = incr[mkey]
      if not counts then counts = {}; incr[mkey] = counts end
      local f = kind_fields[kind] or mk_kind(kind)
      kind_fields[kind] = f
      counts[f] = (counts[f] or 0) + 1
      if api ~= '' then add(mkey, 'a:' .. api, 1) end
      if message then
        if typ ~= '' then
          f = cached(type_fields, typ, mk_type)
          counts[f] = (counts[f] or 0) + 1
        end
        if room ~= '' then
          f = cached(room_fields, room, mk_room)
          counts[f] = (counts[f] or 0) + 1
        end
        local sec = math.floor(ts / 1000)
        seconds[sec] = (seconds[sec] or 0) + 1
      end
      if room ~= '' then zmax(K.room_index, room, ts) end
      if user ~= '' then
        local ukey = user_day(user, ts)
        add(ukey, 'em', message and MSG + 1 or 1)
        zmax(K.last_active, user, ts)
        local hour = math.floor(ts / 3600000)
        local users = sets[hour]
        if not users then users = {}; sets[hour] = users end
        users[user] = true
        if kind == 'join' then
          add(ukey, 'j:' .. room, 1)
          on_join(user, conn, room, seq, ts, false)
        elseif kind == 'leave' then on_leave(user, conn, room, seq, ts)
        elseif kind == 'connect' then on_connect(user, conn, node)
        elseif kind == 'disconnect' then on_disconnect(user, conn, node, seq, ts) end
      end
    end
  end
end

-- write what was gathered -----------------------------------------------------------------
for room, list in pairs(room_entries) do
  for j = 1, #list, 1000 do
    redis.call('ZADD', F.room_history .. room, unpack(list, j, math.min(j + 999, #list)))
  end
end
for sec, n in pairs(seconds) do redis.call('HINCRBY', K.live_seconds, fmt(sec), n) end
for conn in pairs(marks_reset) do
  local args, key = {}, F.conn_rooms .. conn
  for room, v in pairs(marks[conn]) do
    args[#args + 1] = room
    args[#args + 1] = v
  end
  redis.call('DEL', key)
  redis.call('HSET', key, unpack(args))
  redis.call('EXPIRE', key, tomb_ttl)
  marks_dirty[conn] = nil
end
for conn, rooms in pairs(marks_dirty) do
  local args, m = {}, marks[conn]
  for room in pairs(rooms) do
    args[#args + 1] = room
    args[#args + 1] = m[room]
  end
  redis.call('HSET', F.conn_rooms .. conn, unpack(args))
end
-- live counters: net deltas; a field at 0 is removed; a room's member count moves when a
-- user's connections in it go from 0 to some or back
local live = {[K.live_members] = true, [K.live_users] = true, [K.live_nodes] = true}
local rooms_delta = {}
for key in pairs(live) do
  for field, n in pairs(incr[key] or {}) do
    if n ~= 0 then
      local v = redis.call('HINCRBY', key, field, n)
      if v <= 0 then redis.call('HDEL', key, field) end
      if key == K.live_members then
        local room = string.match(field, '^(.*)\t')
        local before = v - n
        if before <= 0 and v > 0 then rooms_delta[room] = (rooms_delta[room] or 0) + 1
        elseif before > 0 and v <= 0 then rooms_delta[room] = (rooms_delta[room] or 0) - 1 end
      end
    end
  end
  incr[key] = nil
end
for room, n in pairs(rooms_delta) do
  if n ~= 0 and redis.call('HINCRBY', K.live_rooms, room, n) <= 0 then
    redis.call('HDEL', K.live_rooms, room)
  end
end
for key, h in pairs(incr) do
  for field, n in pairs(h) do
    local v = redis.call('HINCRBY', key, field, n)
    -- a user-day key is new when its `em` equals what this chunk added: give it its TTL
    if field == 'em' and v == n then
      redis.call('EXPIREAT', key, math.floor(((day_of[key] + 1) * 86400000 + keep_ms) / 1000))
    end
  end
end
for key, day in pairs(closed_days) do
  if not (incr[key] and incr[key]['em']) then  -- a day inside a long visit: maybe a new key
    redis.call('EXPIREAT', key, math.floor(((day + 1) * 86400000 + keep_ms) / 1000), 'NX')
  end
end
for minute, key in pairs(minute_keys) do
  -- set once, when the minute's key is made: its snapshot (FOLD_MINUTE) expires with it
  redis.call('EXPIRE', key, minute_ttl, 'NX')
  redis.call('ZADD', K.dirty_minutes, now, fmt(minute))
end
for key, h in pairs(maxes) do
  local args, n = {}, 0
  for member, score in pairs(h) do
    args[#args + 1] = score
    args[#args + 1] = member
    n = n + 1
    if n == 500 then
      redis.call('ZADD', key, 'GT', unpack(args))
      args, n = {}, 0
    end
  end
  if n > 0 then redis.call('ZADD', key, 'GT', unpack(args)) end
end
for hour, users in pairs(sets) do
  local h = fmt(hour)
  local skey, hkey = F.users_hour .. h, F.users_hour_hll .. h
  local exact = redis.call('HEXISTS', K.users_overflow, 'h' .. h) == 0
  local batch = {}
  for user in pairs(users) do batch[#batch + 1] = user end
  for j = 1, #batch, 500 do
    local last = math.min(j + 499, #batch)
    redis.call('PFADD', hkey, unpack(batch, j, last))
    if exact then redis.call('SADD', skey, unpack(batch, j, last)) end
  end
  if exact and redis.call('SCARD', skey) > exact_limit then
    redis.call('DEL', skey)
    redis.call('HSET', K.users_overflow, 'h' .. h, 1)
    exact = false
  end
  redis.call('EXPIRE', hkey, hour_ttl)
  if exact then redis.call('EXPIRE', skey, hour_ttl) end
  redis.call('ZADD', K.dirty_days, now, fmt(math.floor(hour / 24)))
end
return {new, dup, old, replayed}
