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
The scripts are slot_reserve.lua and slot_release.lua beside this module.
"""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import Redis

from goldwire.store.lua import bind, load


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
        self._reserve = bind(redis, __package__, "slot_reserve.lua")

    async def reserve(self, key: str, live: Iterable[str], final: bool) -> tuple[int, int]:
        """One try: (1 taken | 0 refused | -1 unknown nodes seen, the user's total)."""
        status, total = await self._reserve(counts=key, node=self.node_id, limit=self.limit,
                                            ttl_ms=self.ttl_ms, final="1" if final else "0",
                                            live=list(live))
        return int(status), int(total)

    def release_command(self, key: str) -> tuple[object, ...]:
        """RELEASE as a plain EVAL for the node's outbox (ordered, retried; EVAL because a
        queued EVALSHA would be lost without a word after Redis forgot its scripts)."""
        return load(__package__, "slot_release.lua").command(
            counts=key, node=self.node_id, ttl_ms=self.ttl_ms)
