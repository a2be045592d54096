-- The user's side of one event: the connection's status, meta and rooms, the user's
-- aggregate status (most present of online > busy > away, else offline) and a user
-- version bumped whenever that aggregate changes.
-- KEYS[1] conns      the user's connections (hash conn -> seq|status|ts|meta)
-- KEYS[2] version    the user's presence version (counter)
-- KEYS[3] conn_rooms this connection's rooms (set)
-- KEYS[4] gone       this connection's tombstone (set on disconnect)
-- KEYS[5] last_seen  when the user was last online (ms)
-- KEYS[6] user_rooms the rooms of the user's live connections (hash room -> connections)
-- ARGV[1] kind       connect, join, leave, status or disconnect
-- ARGV[2] conn       the connection id
-- ARGV[3] seq        the event's per-connection sequence number
-- ARGV[4] status     online, away or busy
-- ARGV[5] meta       the status meta (JSON object text)
-- ARGV[6] room       the room of a join or leave ('' otherwise)
-- ARGV[7] ts         the event's time (ms)
-- ARGV[8] tomb_ttl   seconds a tombstone is kept
local kind, conn, seq = ARGV[1], ARGV[2], tonumber(ARGV[3])
local function room_left(room)  -- one of the user's connections left `room`
  if redis.call('HINCRBY', KEYS[6], room, -1) <= 0 then redis.call('HDEL', KEYS[6], room) end
end
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
  for _, r in ipairs(conn_rooms) do room_left(r) end  -- once: the tombstone is set here
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
    if kind == 'join' then
      if redis.call('SADD', KEYS[3], ARGV[6]) == 1 then
        redis.call('HINCRBY', KEYS[6], ARGV[6], 1)
      end
    elseif redis.call('SREM', KEYS[3], ARGV[6]) == 1 then
      room_left(ARGV[6])
    end
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
if changed or again then user_rooms = redis.call('HKEYS', KEYS[6]) end
return {before, after, after_meta, version, conn_rooms, user_rooms}
