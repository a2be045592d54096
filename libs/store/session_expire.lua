-- Remove a session whose sliding expiry passed, unless it slid meanwhile.
-- KEYS[1] sessions  the user's sessions (zset)
-- KEYS[2] session   the session's hash
-- KEYS[3] rooms     the session's rooms
-- KEYS[4] conns     the session's connections
-- ARGV[1] sid       the session id
-- ARGV[2] now_ms    the time now
-- Returns 1 removed, 0 still live.
local expires = redis.call('ZSCORE', KEYS[1], ARGV[1])
if expires and tonumber(expires) > tonumber(ARGV[2]) then return 0 end  -- slid meanwhile
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
return 1
