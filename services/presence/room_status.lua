-- A user's new status shown in one room they are in (the user side changed it).
-- KEYS[1] members        the member views observers see (hash user -> view)
-- KEYS[2] counts         connections per user in the room
-- KEYS[3] user_versions  the user version each view shows
-- KEYS[4] pending_diff   user -> the view observers last saw ('' = none)
-- KEYS[5] version        the room's presence version
-- KEYS[6] pending_states conn -> node channel: joiners waiting for a state
-- KEYS[7] conns          the room's connections
-- ARGV[1] user           the user id
-- ARGV[2] status         the user's aggregate status
-- ARGV[3] meta           the status meta (JSON object text)
-- ARGV[4] user_version   the user version that status is at
-- ARGV[5] flush          '1' for the batch's last call on the room
-- ARGV[6] channel        the room's pub/sub channel
-- ARGV[7] room           the room name
-- Returns {0} (nothing shown) or {1, view}; with flush, the room's size is appended.
-- @include presence_view.lua
-- @include presence_flush.lua
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
