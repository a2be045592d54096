"""Node lifecycle on real processes: drain on SIGTERM, dead sockets, the event stream,
and healing after Redis itself dies."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest
import redis.asyncio as aioredis

from goldwire.protocol.keys import Keys
from tests.event_streams import read_all
from tests.support import API_KEY, Client, Gateway, RawClient, token, until

pytestmark = pytest.mark.asyncio


async def events(redis_url: str, prefix: str) -> list[dict[str, str]]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    entries = await read_all(client, prefix)
    await client.aclose()
    return [fields for _, fields in entries]


async def test_sigterm_drains_with_4012_and_exits(redis_server, key_prefix) -> None:
    gw = Gateway(redis_server.url, key_prefix, drain_timeout=5).start()
    clients = [await Client.open(gw.url, token(f"u{i}"), rooms=[{"room": "doc:d"}])
               for i in range(5)]
    started = time.monotonic()
    gw.proc.send_signal(15)
    codes = await asyncio.gather(*(c.closed_with(timeout=10) for c in clients))
    assert codes == [4012] * 5
    # uvicorn re-raises the SIGTERM it handled once shutdown is complete
    assert gw.proc.wait(15) in (0, -15)
    assert time.monotonic() - started < 10
    # Its disconnects reached the event stream, and it left no liveness key behind.
    kinds = [e["kind"] for e in await events(redis_server.url, key_prefix)]
    assert kinds.count("disconnect") == 5
    client = aioredis.Redis.from_url(redis_server.url)
    assert await client.exists(Keys(key_prefix).node_alive(
        clients[0].connected["data"]["node"])) == 0
    await client.aclose()


async def test_dead_socket_is_closed_by_heartbeat_and_reported(redis_server, key_prefix) -> None:
    gw = Gateway(redis_server.url, key_prefix, websocket_heartbeat_interval=0.3).start()
    try:
        alive = await Client.open(gw.url, token("alive"))  # its library answers pings
        dead = RawClient(gw.port)  # never reads, never answers a ping
        dead.send_text(json.dumps({"op": "connect", "token": token("dead")}))

        async def dead_reported() -> bool:
            return any(e["kind"] == "disconnect" and e["user"] == "dead"
                       for e in await events(redis_server.url, key_prefix))

        await until(dead_reported, timeout=5)
        assert "goldwire_gateway_heartbeat_timeouts_total 1" in gw.metrics()
        assert (await alive.ok("ping")) == {"pong": True}
        await alive.close()
        dead.close()
    finally:
        gw.terminate()


async def test_event_stream_carries_what_services_need(redis_server, key_prefix) -> None:
    gw = Gateway(redis_server.url, key_prefix).start()
    try:
        c = await Client.open(gw.url, token("ev", name="Eve", tenant="acme"),
                              rooms=[{"room": "doc:e"}])
        await c.ok("status", status="busy", meta={"device": "web"})
        await c.ok("publish", room="doc:e", type="document_update", data={})
        await c.ok("leave", room="doc:e")
        await c.close()

        conn_id = c.connected["data"]["conn_id"]

        async def this_connection() -> list[dict[str, str]]:
            # The publish goes to the other family's stream: across two streams, entry ids
            # written in the same millisecond do not order them. The connection's own
            # `seq` does; that is the order the gateway promises.
            mine = [e for e in await events(redis_server.url, key_prefix)
                    if e.get("conn") == conn_id]
            return sorted(mine, key=lambda e: int(e["seq"]))

        async def all_there() -> bool:
            kinds = [e["kind"] for e in await this_connection()]
            return kinds == ["connect", "join", "status", "publish", "leave", "disconnect"]

        await until(all_there, timeout=5)
        stream = await this_connection()
        assert all(e["conn"] == conn_id and e["user"] == "ev" and e["tenant"] == "acme"
                   and e["node"] == c.connected["data"]["node"] for e in stream)
        assert [int(e["seq"]) for e in stream] == [1, 2, 3, 4, 5, 6]
        assert len({e["id"] for e in stream}) == 6
        assert stream[1]["room"] == "doc:e" and stream[2]["status"] == "busy"
        assert json.loads(stream[2]["meta"]) == {"device": "web"}
        assert stream[0]["name"] == "Eve"
    finally:
        gw.terminate()


async def test_redis_restart_heals_without_a_restart_of_the_gateway(redis_server,
                                                                    key_prefix) -> None:
    """Redis dies (no persistence: history is gone). Clients are told to resync, then
    live traffic flows again through the same sockets; the gateway was never restarted."""
    gw = Gateway(redis_server.url, key_prefix).start()
    room = "doc:" + uuid.uuid4().hex[:6]
    try:
        a = await Client.open(gw.url, token("a"), rooms=[{"room": room}])
        b = await Client.open(gw.url, token("b"), rooms=[{"room": room}])
        await a.ok("publish", room=room, type="user_message", data={"n": 0})
        await b.recv_type("user_message")
        redis_server.kill()
        try:
            reply = await a.command("publish", room=room, type="user_message", data={"n": -1})
            assert reply["type"] == "error" and reply["data"]["code"] == "unavailable"
        finally:
            redis_server.restart()
        resync = await b.recv_type("room_update", timeout=15)
        assert resync["room"] == room and resync["data"]["kind"] == "resync"

        async def ready() -> bool:
            async with httpx.AsyncClient() as http:
                return (await http.get(gw.http + "/readyz")).status_code == 200

        await until(ready, timeout=15)
        sent = await a.ok("publish", room=room, type="user_message", data={"n": 1})
        msg = await b.recv_type("user_message")
        assert msg["data"] == {"n": 1} and msg["offset"] == sent["offset"]
        async with httpx.AsyncClient(base_url=gw.http,
                                     headers={"Authorization": f"Bearer {API_KEY}"}) as http:
            resp = await http.post("/v1/publish", json={"user": "b", "data": {"dm": 1}})
            assert resp.json()["delivered"] == 1
        assert (await b.recv_type("system_message"))["data"] == {"dm": 1}
        await a.close()
        await b.close()
    finally:
        gw.terminate()
