-- Take one of a user's connection slots on this node, if the user has room left.
-- KEYS[1] counts   the user's node-count hash (node id -> that node's connections)
-- ARGV[1] node     this gateway's node id
-- ARGV[2] limit    MAX_CONNECTIONS_PER_USER (0 = no limit)
-- ARGV[3] ttl_ms   the hash's expiry, refreshed on every take
-- ARGV[4] final    '1': a node not in `live` is dead (its count is deleted)
-- ARGV[5..] live   the live node ids as this gateway last saw them (its own among them)
-- Returns {1, total} taken, {0, total} refused, {-1, total} unknown nodes: look again.
local limit = tonumber(ARGV[2])
local total = 0
if limit > 0 then
  local live = {}
  for i = 5, #ARGV do live[ARGV[i]] = true end
  local counts = redis.call('HGETALL', KEYS[1])
  local unknown = false
  for i = 1, #counts, 2 do
    if live[counts[i]] then
      total = total + math.max(0, tonumber(counts[i + 1]) or 0)
    elseif ARGV[4] == '1' then
      redis.call('HDEL', KEYS[1], counts[i])
    else
      unknown = true
    end
  end
  if unknown then return {-1, total} end
  if total >= limit then return {0, total} end
end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, total + 1}
