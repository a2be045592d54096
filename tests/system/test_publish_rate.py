"""PUBLISH_RATE_PER_TENANT on the HTTP publish API, shared by two real gateway processes:
429 with Retry-After and a JSON error, every message of a batch counted, batches whole."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from redis.asyncio import Redis

from goldwire.protocol.keys import Keys
from tests.support import API_KEY, Gateway

pytestmark = pytest.mark.asyncio

AUTH = {"Authorization": f"Bearer {API_KEY}"}
BURST = 5


@pytest.fixture
def pair(redis_server, key_prefix) -> Iterator[tuple[Gateway, Gateway]]:
    gws = [Gateway(redis_server.url, key_prefix, publish_rate_per_tenant=0.5,
                   publish_rate_burst=BURST).start() for _ in range(2)]
    yield gws[0], gws[1]
    for gw in gws:
        gw.terminate()


def apis(pair) -> list[httpx.AsyncClient]:
    return [httpx.AsyncClient(base_url=gw.http, headers=AUTH) for gw in pair]


def room(tenant: str = "acme", n: int = 0) -> dict:
    return {"room": "doc:1", "tenant": tenant, "data": {"n": n}}


def assert_limited(res: httpx.Response) -> int:
    assert res.status_code == 429, res.text
    retry = int(res.headers["Retry-After"])
    assert retry >= 1
    body = res.json()["detail"]
    assert body["code"] == "rate_limited" and "PUBLISH_RATE_PER_TENANT" in body["message"]
    assert body["retry_after"] == retry
    return retry


async def history(redis: Redis, prefix: str, tenant: str) -> int:
    return await redis.xlen(Keys(prefix).history(tenant, "doc:1"))


async def test_a_tenant_over_its_rate_gets_429_on_every_gateway(
        pair, redis_server, key_prefix) -> None:
    a, b = apis(pair)
    redis = Redis.from_url(redis_server.url)
    for i in range(BURST):
        assert (await (a, b)[i % 2].post("/v1/publish", json=room(n=i))).status_code == 200
    retry = assert_limited(await a.post("/v1/publish", json=room(n=99)))
    assert_limited(await b.post("/v1/publish", json=room(n=99)))
    assert await history(redis, key_prefix, "acme") == BURST, "a refused publish was stored"
    assert "goldwire_gateway_publishes_rate_limited_total 1" in pair[0].metrics()
    # Other tenants have their own budget (and `default` is a tenant like any other).
    assert (await b.post("/v1/publish", json=room("globex"))).status_code == 200
    assert (await b.post("/v1/publish", json={"room": "doc:1", "data": {}})).status_code == 200
    # Stays a sleep: waiting exactly what Retry-After promised is what proves the header right.
    await asyncio.sleep(retry)  # what Retry-After promised
    assert (await a.post("/v1/publish", json=room(n=100))).status_code == 200
    for c in (a, b):
        await c.aclose()
    await redis.aclose()


async def test_a_batch_counts_each_message_and_is_taken_or_refused_whole(
        pair, redis_server, key_prefix) -> None:
    a, b = apis(pair)
    redis = Redis.from_url(redis_server.url)
    ok = await a.post("/v1/publish/batch", json=[room(n=i) for i in range(3)])
    assert ok.status_code == 200
    # Two tokens left: a batch of three is refused whole, none of it published.
    assert_limited(await b.post("/v1/publish/batch", json=[room(n=i) for i in range(3)]))
    assert await history(redis, key_prefix, "acme") == 3
    # A batch over two tenants, one of them over its rate: nothing is published, and the
    # other tenant's tokens are given back.
    mixed = [room("globex", 1), room("globex", 2), room("globex", 3), room("acme", 4),
             room("acme", 5), room("acme", 6)]
    assert_limited(await a.post("/v1/publish/batch", json=mixed))
    assert await history(redis, key_prefix, "globex") == 0
    full = await b.post("/v1/publish/batch", json=[room("globex", i) for i in range(BURST)])
    assert full.status_code == 200, "globex's tokens were not refunded"
    # A batch bigger than the burst could never pass: 413, not a 429 to retry forever.
    huge = await a.post("/v1/publish/batch", json=[room("initech", i) for i in range(BURST + 1)])
    assert huge.status_code == 413 and huge.json()["detail"]["code"] == "too_large"
    assert "PUBLISH_RATE_BURST" in huge.json()["detail"]["message"]
    for c in (a, b):
        await c.aclose()
    await redis.aclose()


async def test_off_by_default(redis_server, key_prefix) -> None:
    gw = Gateway(redis_server.url, key_prefix).start()
    try:
        async with httpx.AsyncClient(base_url=gw.http, headers=AUTH) as http:
            res = await http.post("/v1/publish/batch", json=[room(n=i) for i in range(1000)])
            assert res.status_code == 200
    finally:
        gw.terminate()
