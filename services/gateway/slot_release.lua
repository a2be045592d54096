-- Give back one of a user's connection slots on this node.
-- KEYS[1] counts   the user's node-count hash (node id -> that node's connections)
-- ARGV[1] node     this gateway's node id
-- ARGV[2] ttl_ms   the hash's expiry, refreshed while connections remain
-- Returns the node's count after the release (the field is gone at 0).
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return n
