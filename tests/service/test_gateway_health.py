"""The gateway's deep readiness on a real Redis: lag and pending per consumer group as
Redis counts them, one service call per cache period however many callers, and every
way a service can fail to answer named in the answer.

The services are an `httpx.MockTransport` here (what they answer is the input under
test); tests/system/test_health.py runs the real processes.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import httpx
import redis.asyncio as aioredis

from goldwire.gateway.health import DeepHealth
from goldwire.protocol.keys import Keys
from goldwire.protocol.partitions import EventStreams
from tests.support import until


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def stand_in_node(redis: aioredis.Redis, prefix: str) -> Any:
    """What DeepHealth reads of a GatewayNode: its Redis, keys, pub/sub state and id."""
    return SimpleNamespace(broker=SimpleNamespace(redis=redis, connected=True),
                           keys=Keys(prefix), node_id="gw-test",
                           event_streams=EventStreams(Keys(prefix), 2))


def services(handler: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


URLS = {"presence": "http://presence", "sessions": "http://sessions",
        "activity": "http://activity"}


async def test_lag_and_pending_per_group_and_ready_only_when_all_are(
        redis_server: Any, key_prefix: str) -> None:
    redis = aioredis.Redis.from_url(redis_server.url)
    keys = Keys(key_prefix)
    streams = keys.event_partitions(2)
    answers = {"presence": (200, {"ready": True, "checks": {"redis": True}}),
               "sessions": (200, {"ready": True, "checks": {"redis": True}}),
               "activity": (503, {"ready": False, "checks": {"lag_ok": False}})}

    def handler(request: httpx.Request) -> httpx.Response:
        status, body = answers[request.url.host]
        return httpx.Response(status, json=body)

    try:
        for stream in streams:  # lag and pending add up over the partitions
            for service in ("presence", "activity"):
                await redis.xgroup_create(stream, keys.consumer_group(service), id="0",
                                          mkstream=True)
        for n in range(3):
            await redis.xadd(streams[n % 2], {"n": n})
        await redis.xreadgroup(keys.consumer_group("activity"), "c1", {streams[0]: ">"},
                               count=1)
        await redis.xreadgroup(keys.consumer_group("activity"), "c2", {streams[1]: ">"},
                               count=1)
        # the family only activity reads: its entries count for activity alone
        only_activity = keys.activity_event_partition(1)
        await redis.xgroup_create(only_activity, keys.consumer_group("activity"), id="0",
                                  mkstream=True)
        await redis.xadd(only_activity, {"n": 3})
        async with services(handler) as client:
            answer = await DeepHealth(stand_in_node(redis, key_prefix), client, URLS).answer()
        assert answer["ready"] is False
        assert answer["gateway"] == {"ready": True, "checks": {"pubsub": True, "redis": True},
                                     "node": "gw-test"}
        assert answer["services"]["presence"] == {"ready": True, "checks": {"redis": True}}
        assert answer["services"]["activity"] == {"ready": False, "checks": {"lag_ok": False}}
        assert answer["stream"] == {"partitions": 2, "groups": {
            "presence": {"lag": 3, "pending": 0, "consumers": 0},
            "activity": {"lag": 2, "pending": 2, "consumers": 1}}}

        answers["activity"] = (200, {"ready": True, "checks": {"lag_ok": True}})
        async with services(handler) as client:
            answer = await DeepHealth(stand_in_node(redis, key_prefix), client, URLS).answer()
        assert answer["ready"] is True
    finally:
        await redis.aclose()


async def test_one_check_per_cache_period_however_many_callers(
        redis_server: Any, key_prefix: str) -> None:
    redis = aioredis.Redis.from_url(redis_server.url)
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.host)
        return httpx.Response(200, json={"ready": True, "checks": {}})

    clock = Clock()
    try:
        async with services(handler) as client:
            health = DeepHealth(stand_in_node(redis, key_prefix), client, URLS, clock=clock)
            answers = await asyncio.gather(*(health.answer() for _ in range(20)))
            assert sorted(calls) == sorted(URLS)  # one call to each service for all 20
            assert all(a is answers[0] for a in answers)
            clock.now += 0.9
            await health.answer()
            assert len(calls) == 3
            clock.now += 0.1  # the cache period is over
            await health.answer()
            assert len(calls) == 6
    finally:
        await redis.aclose()


async def test_a_service_that_does_not_answer_is_named_with_the_reason(
        redis_server: Any, key_prefix: str) -> None:
    redis = aioredis.Redis.from_url(redis_server.url)

    async def handler(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host == "presence":
            raise httpx.ConnectError("connection refused", request=request)
        if host == "sessions":
            await asyncio.sleep(30)  # held past the deep check's timeout
        return httpx.Response(502, text="<html>bad gateway</html>")

    try:
        async with services(handler) as client:
            health = DeepHealth(stand_in_node(redis, key_prefix), client, URLS, timeout=0.2)
            answer = await health.answer()
        assert answer["ready"] is False
        assert answer["services"] == {
            "presence": {"ready": False, "error": "unreachable: connection refused"},
            "sessions": {"ready": False, "error": "no answer within 0.2 s"},
            "activity": {"ready": False, "error": "answered 502 without readiness"}}
        assert answer["stream"]["groups"] == {}  # no stream yet: no groups, and said so
        assert "error" in answer["stream"]
    finally:
        await redis.aclose()


async def test_a_caller_that_gives_up_does_not_cancel_the_check_others_wait_for(
        redis_server: Any, key_prefix: str) -> None:
    redis = aioredis.Redis.from_url(redis_server.url)
    calls: list[str] = []
    release = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.host)
        await release.wait()
        return httpx.Response(200, json={"ready": True, "checks": {}})

    try:
        async with services(handler) as client:
            health = DeepHealth(stand_in_node(redis, key_prefix), client, URLS)
            first = asyncio.create_task(health.answer())
            await until(lambda: len(calls) == 3)  # the check is asking every service
            first.cancel()
            second = asyncio.create_task(health.answer())
            await asyncio.sleep(0)  # `second` joins the running check
            release.set()
            assert (await second)["ready"] is True
            assert len(calls) == 3  # the same check answered it: no second round of calls
            await health.aclose()
    finally:
        await redis.aclose()
