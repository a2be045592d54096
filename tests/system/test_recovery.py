"""Join with `since`: gap-free recovery while messages flow, and honest `recovered: false`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest

from goldwire.protocol.keys import Keys
from goldwire.store.connect import connect
from tests.support import API_KEY, Client, Gateway, token

pytestmark = pytest.mark.asyncio


@pytest.fixture
def gateway(data_redis, key_prefix) -> Iterator[Gateway]:
    """On a plain Redis and on the 3-master cluster (tests/conftest.py `data_redis`)."""
    gw = Gateway(data_redis.url, key_prefix, history_size=50,
                 rate_limit_per_second=1000, rate_limit_burst=1000).start()
    yield gw
    gw.terminate()


def room() -> str:
    return "doc:" + uuid.uuid4().hex[:6]


async def publish(gw: Gateway, r: str, seqs: range) -> list[str]:
    async with httpx.AsyncClient(base_url=gw.http,
                                 headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        offsets = []
        for i in seqs:
            resp = await http.post("/v1/publish", json={"room": r, "type": "user_message",
                                                        "data": {"seq": i}})
            offsets.append(resp.json()["offset"])
        return offsets


async def test_rejoin_with_since_while_messages_keep_coming(gateway) -> None:
    r = room()
    first = await publish(gateway, r, range(10))
    client = await Client.open(gateway.url, token())
    flood = asyncio.create_task(publish(gateway, r, range(10, 40)))
    # Stays a sleep: it only lets the flood start, so the join races it (nothing to wait for).
    await asyncio.sleep(0.02)  # publishes are in flight while the join replays
    reply = await client.ok("join", room=r, since=first[4])
    assert reply["recovered"] is True
    seen = []
    while len(seen) < 35:
        seen.append((await client.recv_type("user_message"))["data"]["seq"])
    await flood
    assert seen == list(range(5, 40))  # after `since`, no gap, no duplicate, in order
    assert (await client.ok("ping")) == {"pong": True}
    assert client._backlog == []
    await client.close()


async def test_since_equal_to_latest_recovers_nothing_missing(gateway) -> None:
    r = room()
    offsets = await publish(gateway, r, range(3))
    client = await Client.open(gateway.url, token(), rooms=[{"room": r, "since": offsets[-1]}])
    assert client.connected["data"]["rooms"] == [{"room": r, "offset": offsets[-1],
                                                  "recovered": True}]
    await publish(gateway, r, range(3, 4))
    assert (await client.recv_type("user_message"))["data"]["seq"] == 3
    await client.close()


async def test_trimmed_history_is_not_recovered(gateway) -> None:
    r = room()
    offsets = await publish(gateway, r, range(400))  # history_size=50 (approximate trim)
    client = await Client.open(gateway.url, token())
    reply = await client.ok("join", room=r, since=offsets[0])
    assert reply == {"room": r, "offset": offsets[-1], "recovered": False}
    assert (await client.ok("ping")) == {"pong": True}
    assert client._backlog == []  # nothing replayed after an honest "no"
    await client.close()


async def test_lost_history_is_not_recovered_though_ids_keep_growing(gateway, data_redis,
                                                                      key_prefix) -> None:
    """A flush (or a restart without persistence) loses history; new ids are still larger."""
    r = room()
    offsets = await publish(gateway, r, range(5))
    keys = Keys(key_prefix)
    client = connect(data_redis.url)
    await client.delete(keys.history("default", r), keys.room_meta("default", r))
    await client.aclose()
    await publish(gateway, r, range(5, 8))
    c = await Client.open(gateway.url, token())
    reply = await c.ok("join", room=r, since=offsets[2])
    assert reply["recovered"] is False
    await c.close()


async def test_since_from_the_future_or_an_empty_room_is_not_recovered(gateway) -> None:
    r = room()
    await publish(gateway, r, range(2))
    c = await Client.open(gateway.url, token())
    assert (await c.ok("join", room=r, since="99999999999999-0"))["recovered"] is False
    empty = room()
    assert (await c.ok("join", room=empty, since="5-0")) == {"room": empty, "offset": "0-0",
                                                              "recovered": False}
    await c.close()
