-- A room's latest offset and, for `since`, the entries after it when recovery is provable:
-- (1) this Redis has held the room's history since before `since` (meta `origin` <= since:
-- a flush, restart or failover loses `origin`, and the next publish sets a newer one),
-- (2) nothing after `since` was trimmed: trimming only ever removes the oldest entries, so
-- that holds when `since` is at or past the first entry still kept, when nothing was ever
-- removed (entries-added == length), or when `since` is the latest offset itself; and
-- (3) `since` is not from the future of this stream.
-- (Redis 7.0 does not update max-deleted-entry-id on trims, so it is not used.)
-- KEYS[1] history  the room's history stream
-- KEYS[2] meta     the room's meta hash
-- ARGV[1] since    the client's last offset ('' = only the latest offset)
-- ARGV[2] ttl_ms   history ttl, for the origin marker of an empty room
-- Returns {latest, recovered (0/1), entries, known_from}.
-- @include offsets.lua
local function less(x, y) return newer(y, x) end
local since = ARGV[1]
if redis.call('EXISTS', KEYS[1]) == 0 then
  -- No history. From now on this Redis holds the room's history from its start, so
  -- remember "complete since now" as the origin: an offset `now-0` handed out for
  -- this empty room (not to clients, whose contract says 0-0, but to sessions and
  -- to the gateway's own catch-up) is then provable. A flush loses the marker too.
  local origin = redis.call('HGET', KEYS[2], 'origin')
  if not origin then
    -- one ms back: an entry added in this very ms gets `now-0`, which must be after it
    local t = redis.call('TIME')
    origin = string.format('%d-0', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - 1)
    redis.call('HSET', KEYS[2], 'origin', origin)
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
  end
  local ok = 0
  if since ~= '' and not less(since, origin) then ok = 1 end
  return {'0-0', ok, {}, origin}
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local last, length, added, first = '0-0', 0, 0, nil
for i = 1, #info, 2 do
  local k = info[i]
  if k == 'last-generated-id' then last = info[i + 1]
  elseif k == 'length' then length = info[i + 1]
  elseif k == 'entries-added' then added = info[i + 1]
  elseif k == 'first-entry' and info[i + 1] then first = info[i + 1][1] end
end
local origin = redis.call('HGET', KEYS[2], 'origin')
if since == '' then return {last, 0, {}, origin or ''} end
if (not origin) or less(since, origin) or less(last, since) then
  return {last, 0, {}, origin or ''}
end
local complete = (added == length) or (since == last) or (first and not less(since, first))
if not complete then return {last, 0, {}, origin} end
return {last, 1, redis.call('XRANGE', KEYS[1], '(' .. since, '+'), origin}
