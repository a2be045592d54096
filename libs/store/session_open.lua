-- Resume the requested session if it is this user's, live and not revoked; else open a
-- new one. All of a user's session keys share the hash tag `{u/<tenant>/<user>}`, so a
-- session id is only ever looked up under the user presenting it.
-- KEYS[1] sessions       the user's sessions (zset: id -> expiry ms)
-- KEYS[2] session        the requested session's hash (s)
-- KEYS[3] rooms          the requested session's rooms (sr: room -> offset)
-- KEYS[4] conns          the requested session's connections (sc: conn -> node)
-- KEYS[5] revoked        the requested session's revocation tombstone (sx)
-- KEYS[6] new_session    the new session's hash
-- KEYS[7] new_conns      the new session's connections
-- ARGV[1] requested      the requested id ('' = none)
-- ARGV[2] new_id         the id to use when none is resumed
-- ARGV[3] conn           this connection's id
-- ARGV[4] node           this gateway's node id
-- ARGV[5] now_ms         the time now
-- ARGV[6] ttl_ms         the sliding session timeout
-- ARGV[7] device         a device label for session lists
-- Returns {id, resumed 0/1, {room, offset, ...}, state JSON}.
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
