"""The Lua scripts behind the publish path and recovery, one atomic call each.

Every room message, from a client or a backend, goes through PUBLISH_ROOM:
append to the room's history stream, trim it by size and age, remember where
this Redis's history of the room begins, publish the finished frame on the
room channel, and record the idempotency key, all in one step, so history
order and live order are the same and a retry is delivered once.

A stored entry keeps the frame's head and tail; the frame is
`head + offset + '","ts":' + ms + tail`, so the bytes replayed from history
are the bytes that went out live.
"""

from __future__ import annotations

from typing import Any

from goldwire.protocol.messages import encode

PUBLISH_ROOM = """
-- KEYS: history, meta, idempotency (the meta key again when there is none)
-- ARGV: channel, head, tail, maxlen, ttl_ms, idem_ms ('0' = no key)
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
redis.call('PUBLISH', ARGV[1], id .. ' ' .. ARGV[2] .. id .. '","ts":' .. ms .. ARGV[3])
if ARGV[6] ~= '0' then redis.call('SET', KEYS[3], id, 'PX', ARGV[6]) end
return {id, 0}
"""

# Recovery is provable only when (1) this Redis has held the room's history
# since before `since` (meta `origin` <= since: a flush, restart or failover
# loses `origin`, and the next publish sets a newer one), (2) nothing after
# `since` was trimmed: trimming only ever removes the oldest entries, so that
# holds when `since` is at or past the first entry still kept, when nothing
# was ever removed (entries-added == length), or when `since` is the latest
# offset itself; and (3) `since` is not from the future of this stream.
# (Redis 7.0 does not update max-deleted-entry-id on trims, so it is not used.)
READ_ROOM = """
-- KEYS: history, meta; ARGV: since ('' = only the latest offset), history ttl (ms)
-- Returns {latest, recovered (0/1), entries, known_from}.
local function parse(id)
  local a, b = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(a), tonumber(b)
end
local function less(x, y)
  local a1, b1 = parse(x)
  local a2, b2 = parse(y)
  return a1 < a2 or (a1 == a2 and b1 < b2)
end
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
"""

# User and broadcast publishes have no history; with an idempotency key, the
# claim and the PUBLISH are one step, so a crash between them cannot leave a
# claimed key with nothing delivered. The caller stores the result under the
# key afterwards (SET XX KEEPTTL); a duplicate gets what is stored.
PUBLISH_DIRECT = """
-- KEYS: idempotency key; ARGV: channel, frame, window_ms
if not redis.call('SET', KEYS[1], '{}', 'NX', 'PX', ARGV[3]) then
  return {redis.call('GET', KEYS[1]) or '{}', 1}
end
return {redis.call('PUBLISH', ARGV[1], ARGV[2]), 0}
"""


def room_frame_parts(
    type_: str, room: str, data: dict[str, Any], sender: dict[str, Any] | None = None
) -> tuple[bytes, bytes]:
    """The head and tail PUBLISH_ROOM stores and splices around the offset and ts."""
    head = b'{"type":"' + type_.encode() + b'","room":' + encode(room) + b',"offset":"'
    tail = (b',"from":' + encode(sender) if sender else b"") + b',"data":' + encode(data) + b"}"
    return head, tail


def build_frame(head: bytes, offset: bytes, tail: bytes) -> bytes:
    """The frame a stored entry stands for (the same concatenation as the script)."""
    ms = offset.partition(b"-")[0]
    return head + offset + b'","ts":' + ms + tail
