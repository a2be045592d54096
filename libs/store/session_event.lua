-- One gateway event's effect on a session: a join remembers the room's offset (never
-- moving it back), a leave forgets the room, a disconnect drops the connection and
-- remembers each room's last offset; every event slides the session's expiry.
-- KEYS[1] sessions  the user's sessions (zset)
-- KEYS[2] session   the session's hash
-- KEYS[3] rooms     the session's rooms
-- KEYS[4] conns     the session's connections
-- ARGV[1] kind      join | leave | disconnect | anything else (only slides the expiry)
-- ARGV[2] sid       the session id
-- ARGV[3] conn      the connection id
-- ARGV[4] room      the room (join, leave)
-- ARGV[5] offset    the room's offset (join)
-- ARGV[6] offsets   JSON object room -> offset (disconnect; '' = none)
-- ARGV[7] now_ms    the event's time
-- ARGV[8] ttl_ms    the sliding session timeout
-- Returns 1, or 0 when the session is gone (expired or revoked).
-- @include offsets.lua
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
