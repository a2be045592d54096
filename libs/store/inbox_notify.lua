-- Keep a notification in the user's inbox and push it to every connection of the user,
-- in one step, with the unread count it makes.
-- KEYS[1] inbox        the user's inbox stream
-- KEYS[2] read         the read mark hash (upto)
-- KEYS[3] read_ids     notifications read one by one (set)
-- KEYS[4] idempotency  the publish's idempotency key (the inbox again when none)
-- ARGV[1] channel      the user's channel
-- ARGV[2] head         '{"type":"notification",'
-- ARGV[3] tail         ',"data":...}' (and `from`)
-- ARGV[4] maxlen       inbox size
-- ARGV[5] min_id       the oldest id kept (retention cutoff, ms)
-- ARGV[6] ttl_ms       inbox keys' expiry
-- ARGV[7] idempotency_ms  how long the key is remembered ('0' = no key)
-- Returns {id, 0, unread} or, for a duplicate, {stored, 1, unread}.
-- @include offsets.lua
-- @include inbox_unread.lua
if ARGV[7] ~= '0' then
  local prev = redis.call('GET', KEYS[4])
  if prev then return {prev, 1, unread(KEYS[1], KEYS[2], KEYS[3])} end
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', 't', ARGV[3])
redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[5])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[6]) end
local ms = string.match(id, '^(%d+)')
local count = unread(KEYS[1], KEYS[2], KEYS[3])
redis.call(PUB, ARGV[1], ARGV[2] .. '"id":"' .. id .. '","ts":' .. ms ..
           ',"unread":' .. count .. ARGV[3])
if ARGV[7] ~= '0' then redis.call('SET', KEYS[4], id, 'PX', ARGV[7]) end
return {id, 0, count}
