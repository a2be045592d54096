-- For each user whose presence view changed since the presence service's last flush,
-- the view before (as observers last saw it) and now, with the published version.
-- KEYS[1] version  the room's presence version (pv)
-- KEYS[2] pending  the users changed since the last flush (pd: user -> view before, '' = none)
-- KEYS[3] members  every member's current view (pm: user -> view)
-- Returns {version, {before, now, before, now, ...} ('' = not a member), every view}.
-- One script, not a MULTI of it and HVALS: a cluster pipeline has no MULTI.
local pending = redis.call('HGETALL', KEYS[2])
local out = {}
for i = 1, #pending, 2 do
  table.insert(out, pending[i + 1])
  table.insert(out, redis.call('HGET', KEYS[3], pending[i]) or '')
end
return {tonumber(redis.call('GET', KEYS[1]) or '0'), out, redis.call('HVALS', KEYS[3])}
