-- Delete a session for good, leaving a tombstone so a client still holding the id
-- cannot bring it back.
-- KEYS[1] sessions  the user's sessions (zset)
-- KEYS[2] session   the session's hash
-- KEYS[3] rooms     the session's rooms
-- KEYS[4] conns     the session's connections
-- KEYS[5] revoked   the session's tombstone
-- ARGV[1] sid       the session id
-- ARGV[2] tombstone_seconds  how long the tombstone lives
-- Returns {existed 0/1, {conn, node, ...}} (the connections to close).
local existed = redis.call('EXISTS', KEYS[2])
local conns = redis.call('HGETALL', KEYS[4])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('SET', KEYS[5], '1', 'EX', ARGV[2])
return {existed, conns}
