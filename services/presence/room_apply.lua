-- The room's side of a join or leave: which connections are in the room and the member
-- list observers see; what changed is noted in `pending_diff`, and with `flush` the
-- room's pending frames are published (presence_flush.lua).
-- KEYS[1] conns          the room's connections (hash conn -> seq|user)
-- KEYS[2] members        the member views observers see (hash user -> view)
-- KEYS[3] counts         connections per user in the room
-- KEYS[4] user_versions  the user version each view shows
-- KEYS[5] pending_leaves users whose leave waits out the grace (zset by due time)
-- KEYS[6] version        the room's presence version
-- KEYS[7] tombstone      this connection's leave tombstone in the room
-- KEYS[8] pending_diff   user -> the view observers last saw ('' = none)
-- KEYS[9] pending_states conn -> node channel: joiners waiting for a state
-- ARGV[1] conn           the connection id
-- ARGV[2] seq            the event's per-connection sequence number
-- ARGV[3] present        '1' join, '0' leave
-- ARGV[4] user           the user id
-- ARGV[5] name           the user's display name ('' = keep)
-- ARGV[6] status         the user's aggregate status
-- ARGV[7] meta           the user's status meta (JSON object text)
-- ARGV[8] user_version   the user version that status is at
-- ARGV[9] now_ms         now (ms)
-- ARGV[10] grace_ms      how long a leave waits for the user to come back (0 = none)
-- ARGV[11] node_channel  the joiner's gateway channel ('' = send no state)
-- ARGV[12] tomb_ttl      seconds a tombstone is kept
-- ARGV[13] flush         '1' for the batch's last call on the room
-- ARGV[14] channel       the room's pub/sub channel
-- ARGV[15] room          the room name
-- Returns {0} for a stale or repeated event, else {1, kind, view} where kind is what this
-- event alone did to the member ('joins', 'leaves', 'updates' or ''). With flush, the
-- room's pending frames are published after the event, even when it was a no-op (a
-- redelivered batch so publishes what a run that died before its flush left pending), and
-- the connections in the room are appended (the pacer sizes the room's next wait by it).
-- @include presence_view.lua
-- @include presence_flush.lua
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
