"""MAX_CONNECTIONS_PER_USER over every gateway: refused with 4029 and nothing counted, freed
when a connection closes, healed when a gateway is killed -9, and the count hashes expire.
Real gateway processes, real sockets, real Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
import websockets
from redis.asyncio import Redis

from goldwire.protocol.keys import Keys
from tests.support import Client, Gateway, Presence, token, until

pytestmark = pytest.mark.asyncio


@pytest.fixture
def pair(redis_server, key_prefix) -> Iterator[tuple[Gateway, Gateway]]:
    gws = [Gateway(redis_server.url, key_prefix, max_connections_per_user=2, node_ttl=1.5,
                   node_id=f"gw-{i}").start() for i in range(2)]
    yield gws[0], gws[1]
    for gw in gws:
        gw.kill()


async def connect_refused(url: str, tok: str) -> tuple[int | None, str]:
    """Open a socket and send connect; return the close code and reason it ends with."""
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"op": "connect", "token": tok, "ref": 1}))
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert msg.get("ref") != 1, f"connect was accepted: {msg}"
        return ws.close_code, ws.close_reason


async def counts(redis: Redis, prefix: str, user: str) -> dict[str, int]:
    raw = await redis.hgetall(Keys(prefix).user_nodes("default", user))
    return {k.decode(): int(v) for k, v in raw.items()}


async def test_the_limit_holds_across_gateways_and_a_refusal_counts_nothing(
        pair, redis_server, key_prefix) -> None:
    gw1, gw2 = pair
    redis = Redis.from_url(redis_server.url)
    a = await Client.open(gw1.url, token("ada"))
    b = await Client.open(gw2.url, token("ada"))
    assert await counts(redis, key_prefix, "ada") == {"gw-0": 1, "gw-1": 1}
    for gw in (gw1, gw2):
        code, reason = await connect_refused(gw.url, token("ada"))
        assert code == 4029
        assert "too many connections for this user" in reason and "2" in reason
    assert await counts(redis, key_prefix, "ada") == {"gw-0": 1, "gw-1": 1}, \
        "a refused connect left its slot taken"
    assert "goldwire_gateway_connections_refused_per_user_total 1" in gw1.metrics()
    # Another user, and the same user id in another tenant, are not affected.
    other = await Client.open(gw1.url, token("bob"))
    elsewhere = await Client.open(gw1.url, token("ada", tenant="globex"))
    # `send` still counts the user's connections on both gateways.
    assert await other.ok("send", user="ada", data={"hi": 1}) == {"delivered": 2}
    # Closing one frees its slot, on whichever gateway.
    await b.close()
    await until(lambda: _equals(counts(redis, key_prefix, "ada"), {"gw-0": 1}), timeout=10)
    c = await Client.open(gw2.url, token("ada"))
    assert c.connected["type"] == "system_message"
    for client in (a, c, other, elsewhere):
        await client.close()
    await until(lambda: _equals(redis.exists(Keys(key_prefix).user_nodes("default", "ada")),
                                   0), timeout=10)
    await redis.aclose()


async def _equals(awaitable, expected) -> bool:
    return await awaitable == expected


async def test_count_hashes_expire_but_not_while_the_user_is_connected(
        redis_server, key_prefix) -> None:
    gw = Gateway(redis_server.url, key_prefix, user_nodes_ttl=2).start()
    redis = Redis.from_url(redis_server.url)
    key = Keys(key_prefix).user_nodes("default", "ada")
    try:
        a = await Client.open(gw.url, token("ada"))
        assert 0 < await redis.pttl(key) <= 2000
        # Stays a sleep: outliving the TTL is what proves the node keeps refreshing it.
        await asyncio.sleep(4)  # twice the TTL: the node refreshed it meanwhile
        assert 0 < await redis.pttl(key) <= 2000
        assert await redis.hgetall(key) != {}
        await a.close()
        await until(lambda: _equals(redis.exists(key), 0), timeout=10)  # empty: deleted, not zero
    finally:
        gw.kill()
        await redis.aclose()


async def test_kill_9_the_sweep_frees_the_dead_gateways_slots(
        pair, redis_server, key_prefix) -> None:
    gw1, gw2 = pair
    presence = Presence(redis_server.url, key_prefix, presence_sweep_interval=1).start()
    redis = Redis.from_url(redis_server.url)
    try:
        a = await Client.open(gw1.url, token("ada"))
        await Client.open(gw2.url, token("ada"))
        assert (await connect_refused(gw1.url, token("ada")))[0] == 4029
        # Presence must have seen the connect on gw-1 before it can sweep it.
        key = Keys(key_prefix).presence_node_conns("gw-1")
        await until(lambda: _equals(redis.scard(key), 1), timeout=10)
        gw2.kill()
        # The sweep (not a connect) removes the dead gateway's field ...
        await until(lambda: _equals(counts(redis, key_prefix, "ada"), {"gw-0": 1}), timeout=10)
        # ... so the user may connect again.
        again = await Client.open(gw1.url, token("ada"))
        assert again.connected["type"] == "system_message"
        assert await counts(redis, key_prefix, "ada") == {"gw-0": 2}
        await a.close()
        await again.close()
    finally:
        presence.kill()
        await redis.aclose()


async def test_kill_9_without_any_sweep_a_connect_heals_the_count(
        pair, redis_server, key_prefix) -> None:
    gw1, gw2 = pair
    redis = Redis.from_url(redis_server.url)
    a = await Client.open(gw1.url, token("ada"))
    await Client.open(gw2.url, token("ada"))
    gw2.kill()
    # Refused while gw-1's liveness key lives (it might only be slow) ...
    assert (await connect_refused(gw1.url, token("ada")))[0] == 4029
    # ... then, once it has lapsed, the connect ignores and deletes the dead node's field.
    await until(lambda: _equals(redis.exists(Keys(key_prefix).node_alive("gw-1")), 0), timeout=10)
    # Stays a sleep: gw-0's cached view of the live nodes is internal, and the only outside
    # probe is a connect, which is what this test checks.
    await asyncio.sleep(0.5)  # and gw-0's view of the live nodes moved on
    again = await Client.open(gw1.url, token("ada"))
    assert again.connected["type"] == "system_message"
    assert await counts(redis, key_prefix, "ada") == {"gw-0": 2}
    await a.close()
    await again.close()
    await redis.aclose()
