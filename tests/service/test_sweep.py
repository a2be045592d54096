"""The shared dead-gateway check: a node is dead once its liveness key is gone, and
the sweep calls its `end` only with the dead ones (and not at all when none is)."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from goldwire.protocol.keys import Keys
from goldwire.service.sweep import dead_nodes, sweep_dead_gateways


async def test_only_nodes_without_a_liveness_key_are_dead(redis_server: Any,
                                                          key_prefix: str) -> None:
    redis = aioredis.Redis.from_url(redis_server.url)
    keys = Keys(key_prefix)
    try:
        await redis.set(keys.node_alive("gw-up"), "1", ex=30)
        assert await dead_nodes(redis, keys, ["gw-up", "gw-b", "gw-a", "gw-b"]) == \
            ["gw-a", "gw-b"]
        assert await dead_nodes(redis, keys, []) == []

        calls: list[list[str]] = []

        async def end(dead: list[str]) -> int:
            calls.append(dead)
            return 7

        assert await sweep_dead_gateways(redis, keys, ["gw-up"], end) == 0
        assert await sweep_dead_gateways(redis, keys, ["gw-up", "gw-x"], end) == 7
        assert calls == [["gw-x"]]
    finally:
        await redis.aclose()
