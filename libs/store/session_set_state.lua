-- Replace a live session's state (the client's own small JSON).
-- KEYS[1] session  the session's hash
-- ARGV[1] state    the state JSON
-- ARGV[2] now_ms   the time now
-- Returns 1, or 0 when the session is gone.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'last_seen', ARGV[2])
return 1
