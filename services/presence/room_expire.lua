-- Pending leaves whose grace ran out leave the room; ends with the room's flush, which
-- publishes them with anything else pending in the room.
-- KEYS[1] members        the member views observers see (hash user -> view)
-- KEYS[2] counts         connections per user in the room
-- KEYS[3] user_versions  the user version each view shows
-- KEYS[4] pending_leaves users whose leave waits out the grace (zset by due time)
-- KEYS[5] version        the room's presence version
-- KEYS[6] pending_diff   user -> the view observers last saw ('' = none)
-- KEYS[7] pending_states conn -> node channel: joiners waiting for a state
-- KEYS[8] conns          the room's connections
-- ARGV[1] now_ms         now (ms): leaves due by then go
-- ARGV[2] channel        the room's pub/sub channel
-- ARGV[3] room           the room name
-- Returns {leaves, the next pending leave's due time or '', connections in the room}.
-- @include presence_flush.lua
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
