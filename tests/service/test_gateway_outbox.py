"""The gateway's outbox against Redis refusing writes: a write refused for now (OOM) stays
queued, in order, until Redis takes it; one refused for good (WRONGTYPE) is counted and
dropped without holding up the writes after it. Both used to vanish without a word."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError

from goldwire.cli.redis_server import RedisServer
from goldwire.protocol.keys import Keys
from goldwire.protocol.partitions import CONNECTION, EventStreams
from services.gateway.metrics import GatewayMetrics
from services.gateway.outbox import Outbox

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def redis(plain_redis: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(plain_redis.url)
    try:
        yield client
    finally:
        await client.config_set("maxmemory", 0)
        await client.aclose()


def outbox_of(redis: Redis, prefix: str) -> tuple[Outbox, list[str], GatewayMetrics]:
    streams = EventStreams(Keys(prefix), 1)
    metrics = GatewayMetrics()
    return Outbox(redis, streams, "n1", 1000, metrics), streams.family(CONNECTION), metrics


async def test_writes_refused_for_now_stay_queued_in_order(redis, key_prefix) -> None:
    outbox, [stream], metrics = outbox_of(redis, key_prefix)
    outbox.event("status", user="ada", tenant="acme", status="s1", seq=1)
    await outbox.flush()
    await redis.config_set("maxmemory-policy", "noeviction")
    await redis.config_set("maxmemory", 1)  # every write is refused: OOM
    for seq in (2, 3):
        outbox.event("status", user="ada", tenant="acme", status=f"s{seq}", seq=seq)
    with pytest.raises(OutOfMemoryError):
        await outbox.flush()
    with pytest.raises(OutOfMemoryError):  # still queued, still refused
        await outbox.flush()
    await redis.config_set("maxmemory", 0)
    await outbox.flush()
    seqs = [int(f[b"seq"]) for _, f in await redis.xrange(stream)]
    assert seqs == [1, 2, 3]
    assert metrics.outbox_refused == 0 and metrics.events_dropped == 0


async def test_a_write_refused_for_good_is_counted_and_the_rest_go_on(redis, key_prefix) -> None:
    outbox, [stream], metrics = outbox_of(redis, key_prefix)
    wrong = f"{key_prefix}:not-a-hash"
    await redis.set(wrong, "x")
    outbox.event("status", user="ada", tenant="acme", status="s1", seq=1)
    outbox.command("HSET", wrong, "f", "v")  # WRONGTYPE: no retry can fix it
    outbox.command("HSET", f"{key_prefix}:ok", "f", "v")
    outbox.event("status", user="ada", tenant="acme", status="s2", seq=2)
    await outbox.flush()
    assert metrics.outbox_refused == 1
    assert await redis.hget(f"{key_prefix}:ok", "f") == b"v"
    assert [int(f[b"seq"]) for _, f in await redis.xrange(stream)] == [1, 2]
    await outbox.flush()  # nothing left queued
    assert metrics.outbox_refused == 1
