"""Two gateway processes on one Redis: everything crosses, and a kill -9 loses nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest

from goldwire.protocol.offsets import parse_offset
from tests.support import API_KEY, Client, Gateway, token

pytestmark = pytest.mark.asyncio


@pytest.fixture
def pair(redis_server, key_prefix) -> Iterator[tuple[Gateway, Gateway]]:
    gws = [Gateway(redis_server.url, key_prefix).start() for _ in range(2)]
    yield gws[0], gws[1]
    for gw in gws:
        gw.terminate()


@pytest.fixture
def pair_on_each_backend(data_redis, key_prefix) -> Iterator[tuple[Gateway, Gateway]]:
    """Two gateways on a plain Redis, then on a 3-master Redis Cluster (data_redis)."""
    gws = [Gateway(data_redis.url, key_prefix).start() for _ in range(2)]
    yield gws[0], gws[1]
    for gw in gws:
        gw.terminate()


def api(gw: Gateway) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gw.http, headers={"Authorization": f"Bearer {API_KEY}"})


async def test_rooms_users_and_broadcasts_cross_gateways(pair_on_each_backend) -> None:
    gw1, gw2 = pair_on_each_backend
    r = "doc:" + uuid.uuid4().hex[:6]
    a = await Client.open(gw1.url, token("alice"), rooms=[{"room": r}])
    b = await Client.open(gw2.url, token("bob"), rooms=[{"room": r}])
    other_tenant = await Client.open(gw2.url, token("eve", tenant="globex"))

    sent = await a.ok("publish", room=r, type="document_update", data={"n": 1})
    assert (await b.recv_type("document_update"))["offset"] == sent["offset"]

    assert (await a.ok("send", user="bob", data={"dm": 1})) == {"delivered": 1}
    assert (await b.recv_type("user_message"))["data"] == {"dm": 1}

    async with api(gw1) as http:
        resp = await http.post("/v1/publish", json={"broadcast": True, "data": {"all": 1}})
        assert resp.status_code == 200
        resp = await http.post("/v1/publish", json={"user": "alice", "type": "notification",
                                                    "data": {"title": "hi"}})
        assert resp.json() == {"delivered": 1, "duplicate": False}
    for c in (a, b):
        assert (await c.recv_type("system_message"))["data"] == {"all": 1}
    assert (await a.recv_type("notification"))["data"] == {"title": "hi"}
    # The broadcast was the default tenant's: globex's user saw nothing.
    assert (await other_tenant.ok("ping")) == {"pong": True}
    assert other_tenant._backlog == []
    for c in (a, b, other_tenant):
        await c.close()


async def test_kill_9_then_reconnect_elsewhere_misses_nothing(pair) -> None:
    """A client's gateway dies mid-stream; it recovers on the other with `since`."""
    gw1, gw2 = pair
    r = "doc:" + uuid.uuid4().hex[:6]
    total = 300
    a = await Client.open(gw1.url, token("alice"), rooms=[{"room": r}])
    seen: list[int] = []
    last_offset = "0-0"

    async def publish_all() -> None:
        async with api(gw2) as http:
            for i in range(total):
                resp = await http.post("/v1/publish", json={
                    "room": r, "type": "document_update", "data": {"seq": i}})
                assert resp.status_code == 200
                await asyncio.sleep(0.005)  # stays: paces the stream so the kill lands mid-way

    publisher = asyncio.create_task(publish_all())
    while len(seen) < 60:
        msg = await a.recv_type("document_update")
        seen.append(msg["data"]["seq"])
        last_offset = msg["offset"]
    gw1.kill()  # SIGKILL: no drain, no goodbye
    assert await a.closed_with() in (1006, None)

    b = await Client.open(gw2.url, token("alice"), rooms=[{"room": r, "since": last_offset}])
    assert b.connected["data"]["rooms"][0]["recovered"] is True
    offsets = [parse_offset(last_offset)]
    while len(seen) < total:
        msg = await b.recv_type("document_update", timeout=10)
        seen.append(msg["data"]["seq"])
        offsets.append(parse_offset(msg["offset"]))
    await publisher
    assert seen == list(range(total))  # no gap, no duplicate, in order
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    await b.close()
