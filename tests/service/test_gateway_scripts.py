"""The gateway's own Lua (slot_reserve/slot_release.lua, rate_take.lua) called through
UserSlots and RedisRateLimiter against a real Redis: limits hold, dead nodes' counts
heal, releases clean up, buckets refill and refunds give back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from goldwire.gateway.ratelimit import RedisRateLimiter
from goldwire.gateway.slots import UserSlots


@pytest.fixture
async def redis(redis_server: Any) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def test_reserve_takes_slots_up_to_the_limit_over_every_live_node(
        redis: aioredis.Redis, key_prefix: str) -> None:
    key = f"{key_prefix}:slots:u1"
    a = UserSlots(redis, "gw-a", limit=3, ttl=30)
    b = UserSlots(redis, "gw-b", limit=3, ttl=30)
    live = ["gw-a", "gw-b"]
    assert await a.reserve(key, live, final=False) == (1, 1)
    assert await b.reserve(key, live, final=False) == (1, 2)
    assert await a.reserve(key, live, final=False) == (1, 3)
    assert await b.reserve(key, live, final=False) == (0, 3)  # refused: nothing taken
    assert await redis.hgetall(key) == {b"gw-a": b"2", b"gw-b": b"1"}
    assert 0 < await redis.pttl(key) <= 30_000


async def test_a_dead_nodes_count_is_reported_then_deleted_when_final(
        redis: aioredis.Redis, key_prefix: str) -> None:
    key = f"{key_prefix}:slots:u2"
    await redis.hset(key, mapping={"gw-dead": 5})
    slots = UserSlots(redis, "gw-a", limit=2, ttl=30)
    assert await slots.reserve(key, ["gw-a"], final=False) == (-1, 0)
    assert await redis.hgetall(key) == {b"gw-dead": b"5"}  # untouched until sure
    assert await slots.reserve(key, ["gw-a"], final=True) == (1, 1)
    assert await redis.hgetall(key) == {b"gw-a": b"1"}


async def test_no_limit_still_counts_and_release_deletes_the_last(
        redis: aioredis.Redis, key_prefix: str) -> None:
    key = f"{key_prefix}:slots:u3"
    slots = UserSlots(redis, "gw-a", limit=0, ttl=30)
    for _ in range(3):
        status, _ = await slots.reserve(key, [], final=False)
        assert status == 1
    release = slots.release_command(key)
    assert release[0] == "EVAL"  # plain EVAL: survives a SCRIPT FLUSH in the outbox
    assert await redis.execute_command(*release) == 2
    await redis.script_flush()
    assert await redis.execute_command(*release) == 1
    assert await redis.execute_command(*release) == 0
    assert await redis.exists(key) == 0


async def test_bucket_allows_the_burst_then_says_when_to_retry(
        redis: aioredis.Redis, key_prefix: str) -> None:
    limiter = RedisRateLimiter(redis, rate=2, burst=3)
    key = f"{key_prefix}:rate:ip"
    verdicts = [await limiter.take(key) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert 0 < verdicts[-1].retry_after_ms <= 500 and verdicts[-1].retry_after == 1
    await limiter.refund(key, 2)
    assert (await limiter.take(key, cost=2)).allowed
    assert 0 < await redis.pttl(key) <= 3 * 500 + 1000


async def test_bucket_survives_a_script_flush_and_rate_zero_is_off(
        redis: aioredis.Redis, key_prefix: str) -> None:
    limiter = RedisRateLimiter(redis, rate=1, burst=1)
    key = f"{key_prefix}:rate:t"
    assert (await limiter.take(key)).allowed
    await redis.script_flush()
    assert not (await limiter.take(key)).allowed  # reloaded, and the bucket kept its state
    off = RedisRateLimiter(redis, rate=0, burst=1)
    assert all([(await off.take(key)).allowed for _ in range(5)])
