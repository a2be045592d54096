"""The gateway's outbox against a real Redis that refuses writes for now: on the one-node
cluster (tests/service/conftest.py) a slot taken away answers CLUSTERDOWN, as during a
failover. The refused write and those after it wait and land, in order, once the slot is
served again; a command Redis will never take is skipped without holding up the rest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from goldwire.gateway.metrics import GatewayMetrics
from goldwire.gateway.outbox import Outbox, RedisNotReady
from tests.support import until


@pytest.fixture
async def redis(redis_server: Any) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def test_writes_refused_for_now_wait_and_land_in_order(
        redis: aioredis.Redis, key_prefix: str) -> None:
    served, unserved = f"{{{key_prefix}:a}}:k", f"{{{key_prefix}:b}}:list"
    slot = key_slot(unserved.encode())
    assert key_slot(served.encode()) != slot
    outbox = Outbox(redis, f"{{{key_prefix}:a}}:events", "gw-test", 1000, GatewayMetrics())
    # Only that slot down (as if its master were), the others served meanwhile.
    await redis.config_set("cluster-require-full-coverage", "no")
    await redis.execute_command("CLUSTER", "DELSLOTS", slot)
    try:
        outbox.command("SET", served, "before")
        outbox.command("RPUSH", unserved, "1")
        outbox.command("RPUSH", unserved, "2")
        with pytest.raises(RedisNotReady, match="CLUSTERDOWN"):
            await outbox.flush()
        assert await redis.get(served) == b"before"  # what came before went out
        outbox.start()  # the loop retries with backoff, as in a gateway
    finally:
        await redis.execute_command("CLUSTER", "ADDSLOTS", slot)
        await redis.config_set("cluster-require-full-coverage", "yes")
    try:
        async def landed() -> bool:
            try:
                return await redis.lrange(unserved, 0, -1) == [b"1", b"2"]
            except aioredis.ResponseError:  # CLUSTERDOWN until the node says ok again
                return False
        await until(landed, timeout=20)
    finally:
        await outbox.close()
        await redis.delete(unserved)
        await redis.delete(served)


async def test_a_write_redis_will_never_take_is_skipped(
        redis: aioredis.Redis, key_prefix: str) -> None:
    key = f"{{{key_prefix}}}:k"
    outbox = Outbox(redis, f"{{{key_prefix}}}:events", "gw-test", 1000, GatewayMetrics())
    await redis.set(key, "a string")
    outbox.command("HSET", key, "f", "v")  # WRONGTYPE: never
    outbox.command("SET", f"{key}:after", "ok")
    await outbox.flush()
    assert await redis.get(f"{key}:after") == b"ok"
    await redis.delete(key, f"{key}:after")
