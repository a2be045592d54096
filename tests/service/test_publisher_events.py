"""RedisPublisher's `publish` events, written behind the publishes (event_writer.py):
every one recorded, in order, by the time `aclose()` returns; a refused events stream
costs the events, never a publish."""

from __future__ import annotations

import logging

import pytest
import redis.asyncio as aioredis

from goldwire.client import RedisPublisher
from goldwire.client.event_writer import EventWriter
from goldwire.protocol.http import PublishRequest
from goldwire.protocol.keys import Keys
from goldwire.store.connect import connect
from tests.event_streams import read_all, stream_of

pytestmark = pytest.mark.asyncio


@pytest.fixture(params=["cluster-node", "plain"])
def any_redis(request: pytest.FixtureRequest) -> str:
    """The one-node cluster (cluster client, one slot check per script) or a plain Redis."""
    name = "redis_server" if request.param == "cluster-node" else "plain_redis"
    return request.getfixturevalue(name).url


async def test_every_event_is_recorded_in_order_by_aclose(any_redis: str, key_prefix: str) -> None:
    pub = RedisPublisher(any_redis, key_prefix=key_prefix)
    offsets = [(await pub.publish(PublishRequest(room="doc:ev", type="document_update",
                                                 data={"i": i}))).offset for i in range(300)]
    await pub.aclose()
    client = connect(any_redis, decode_responses=True)
    try:
        events = [f for _, f in await read_all(client, key_prefix) if f["kind"] == "publish"]
    finally:
        await client.aclose()
    assert [e["offset"] for e in events] == offsets
    assert {e["room"] for e in events} == {"doc:ev"} and {e["source"] for e in events} == {"api"}
    assert len({e["id"] for e in events}) == 300


async def test_a_refused_events_stream_costs_the_events_not_the_publishes(
        any_redis: str, key_prefix: str, caplog: pytest.LogCaptureFixture) -> None:
    client = connect(any_redis, decode_responses=True)
    pub = RedisPublisher(any_redis, key_prefix=key_prefix)
    try:
        stream = await stream_of(client, key_prefix, {"kind": "publish", "tenant": "default"})
        await client.set(stream, "not a stream")  # every XADD to it: WRONGTYPE
        with caplog.at_level(logging.WARNING, logger="goldwire.client.publisher"):
            results = [await pub.publish(PublishRequest(room="doc:w", type="document_update",
                                                        data={"i": i})) for i in range(20)]
            await pub.aclose()
        assert len({r.offset for r in results}) == 20
        assert any("publish events not recorded" in r.getMessage() for r in caplog.records)
        assert await client.xlen(Keys(key_prefix).history("default", "doc:w")) == 20
    finally:
        await client.aclose()


async def test_the_queue_is_bounded_while_redis_is_away() -> None:
    """Nothing answers on this port: past the bound, events are dropped and counted."""
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    writer = EventWriter(dead, maxlen=100, limit=50)
    for i in range(80):
        writer.add("s", {"i": i})
    assert writer.dropped == 30 and writer.pending <= 50
    await writer.drain()
    assert writer.pending == 0
    await dead.aclose()
