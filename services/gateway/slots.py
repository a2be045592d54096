"""Per-user connection slots: MAX_CONNECTIONS_PER_USER counted over every gateway.

The count lives in the user's `user_nodes` hash (node id → that node's
connections of the user), the same hash `send` reads to count deliveries. A
connect checks and takes a slot in one Lua call: the sum over live nodes is
compared with the limit and the node's field is incremented only when there is
room, so two gateways admitting at once cannot both take the last slot, and a
refused connect leaves nothing behind. Every change is an increment or a
decrement (never a written total), so they commute however the node's calls
interleave; the field and then the hash disappear with the last connection.

Counts heal when a gateway dies: the presence sweep deletes a dead node's
fields, and a connect that meets a field of a node not in the live set asks
Redis again who is alive, then ignores and deletes the dead one's (so the
limit heals within NODE_TTL even with no presence service running). The hash
has an expiry, refreshed while the user has connections here, so a count that
nothing else cleans up (a node that died before any sweep saw it) ends.
"""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import Redis

# ARGV[4..]: the live nodes as this gateway last saw them (its own among them).
RESERVE = """
-- KEYS: the user's node-count hash; ARGV: node, limit (0 = none), ttl ms,
-- final ('1': a node not listed is dead), live node ids...
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
"""

RELEASE = """
-- KEYS: the user's node-count hash; ARGV: node, ttl ms
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return n
"""


class SlotsRefused(Exception):
    """The user holds MAX_CONNECTIONS_PER_USER connections already."""

    def __init__(self, total: int, limit: int) -> None:
        super().__init__(f"too many connections for this user ({total} of {limit})")
        self.total = total
        self.limit = limit


class UserSlots:
    def __init__(self, redis: Redis, node_id: str, limit: int, ttl: float) -> None:
        self.node_id = node_id
        self.limit = max(0, limit)
        self.ttl_ms = max(1000, int(ttl * 1000))
        self._reserve = redis.register_script(RESERVE)

    async def reserve(self, key: str, live: Iterable[str], final: bool) -> tuple[int, int]:
        """One try: (1 taken | 0 refused | -1 unknown nodes seen, the user's total)."""
        args = [self.node_id, self.limit, self.ttl_ms, "1" if final else "0", *live]
        status, total = await self._reserve(keys=[key], args=args)
        return int(status), int(total)

    def release_command(self, key: str) -> tuple[object, ...]:
        """RELEASE as a plain EVAL for the node's outbox (ordered, retried; EVAL because a
        queued EVALSHA would be lost without a word after Redis forgot its scripts)."""
        return ("EVAL", RELEASE, 1, key, self.node_id, self.ttl_ms)
