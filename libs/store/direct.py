"""User and broadcast publishes (no history), and who a user's message reached.

Shared by the gateway and the Redis publisher, so the idempotency record is in
one format (`{}` while in flight, then the result as JSON) and a key used over
HTTP and then straight to Redis is still delivered once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from goldwire.protocol.keys import Keys
from goldwire.store.connect import publish
from goldwire.store.lua import bind


class DirectStore:
    def __init__(self, redis: Any, keys: Keys, idempotency_window: int) -> None:
        self.redis = redis
        self.keys = keys
        self.window_ms = idempotency_window * 1000
        self._publish = bind(redis, __package__, "direct_publish.lua")

    async def publish(self, channel: str, frame: bytes,
                      idempotency_key: str | None) -> tuple[int, bytes | None]:
        """PUBLISH, or claim-then-PUBLISH atomically under an idempotency key (a full
        key, `Keys.idempotency`). Returns (subscribers reached, None), or (0, stored
        result) for a duplicate."""
        if idempotency_key is None:
            return await publish(self.redis, channel, frame), None
        value, dup = await self._publish(idempotency=idempotency_key, channel=channel,
                                         frame=frame, window_ms=self.window_ms)
        return (0, value) if dup else (int(value), None)

    async def remember_result(self, idempotency_key: str | None, result: dict[str, Any]) -> None:
        """Store a first publish's result under its key, for the retries that follow."""
        if idempotency_key is not None:
            await self.redis.set(idempotency_key, json.dumps(result),
                                 xx=True, keepttl=True)

    async def user_node_counts(self, tenant: str, user: str) -> dict[str, int]:
        """The user's connections per gateway node (the `user_nodes` hash)."""
        counts = await self.redis.hgetall(self.keys.user_nodes(tenant, user))
        return {node.decode(): int(n) for node, n in counts.items()}

    async def user_deliveries(self, tenant: str, user: str) -> int:
        """The user's connections on live gateways, read in one round trip (for a
        publisher that keeps no view of the live nodes; a gateway keeps its own)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.user_nodes(tenant, user))
        pipe.zrangebyscore(self.keys.nodes(), int(time.time() * 1000), "+inf")
        counts, live = await pipe.execute()
        return self.delivered({node.decode(): int(n) for node, n in counts.items()},
                              (n.decode() for n in live))

    @staticmethod
    def delivered(counts: dict[str, int], live: Iterable[str]) -> int:
        """The connections on gateways believed alive: what a user publish reports."""
        alive = set(live)
        return sum(n for node, n in counts.items() if node in alive)
