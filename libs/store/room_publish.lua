-- Append one room message to the room's history and publish it live, in one step, so
-- history order and live order are the same and a retry with a key is delivered once.
-- The stored entry keeps the frame's head and tail; the frame is
-- head .. offset .. '","ts":' .. ms .. tail (goldwire.protocol.frames.build_frame).
-- KEYS[1] history      the room's history stream
-- KEYS[2] meta         the room's meta hash (`origin`: where this Redis's history begins)
-- KEYS[3] idempotency  the publish's idempotency key (the meta key again when none)
-- ARGV[1] channel      the room's pub/sub channel
-- ARGV[2] head         the frame up to the offset
-- ARGV[3] tail         the frame after the ts
-- ARGV[4] maxlen       history size (approximate trim)
-- ARGV[5] ttl_ms       history age limit and key expiry
-- ARGV[6] idempotency_ms  how long the key is remembered ('0' = no key)
-- Returns {offset, 0} or, for a duplicate, {first offset, 1}.
if ARGV[6] ~= '0' then
  local prev = redis.call('GET', KEYS[3])
  if prev then return {prev, 1} end
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', 'h', ARGV[2], 't', ARGV[3])
local ms = string.match(id, '^(%d+)')
redis.call('HSETNX', KEYS[2], 'origin', id)
local ttl = tonumber(ARGV[5])
redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%d', tonumber(ms) - ttl))
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call(PUB, ARGV[1], id .. ' ' .. ARGV[2] .. id .. '","ts":' .. ms .. ARGV[3])
if ARGV[6] ~= '0' then redis.call('SET', KEYS[3], id, 'PX', ARGV[6]) end
return {id, 0}
