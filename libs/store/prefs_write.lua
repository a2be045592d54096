-- Write a user's preferences if the caller's version is current, and push them to every
-- connection of the user (other tabs and devices update live).
-- KEYS[1] preferences  the user's preferences hash (values, version)
-- ARGV[1] values       the new values JSON
-- ARGV[2] version      the version the caller read
-- ARGV[3] channel      the user's channel
-- Returns {1, values, new version} or, for a stale version, {0, current values, version}.
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if tonumber(ARGV[2]) ~= version then
  return {0, redis.call('HGET', KEYS[1], 'values') or '{}', version}
end
version = version + 1
redis.call('HSET', KEYS[1], 'values', ARGV[1], 'version', version)
redis.call(PUB, ARGV[3], '{"type":"system_message","data":{"kind":"preferences","values":' ..
           ARGV[1] .. ',"version":' .. version .. '}}')
return {1, ARGV[1], version}
