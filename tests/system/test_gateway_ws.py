"""One real gateway process on a real Redis: the socket contract, and every bad input.

Each bad input gets its documented error or close code while a bystander
client on the same gateway keeps publishing and receiving.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import websockets

from tests.redis_backends import REDIS_BACKENDS
from tests.support import API_KEY, Client, Gateway, RawClient, token, until

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module", params=REDIS_BACKENDS)
def gateway(request: pytest.FixtureRequest) -> Iterator[Gateway]:
    """One gateway per backend for the module: a plain Redis, then the 3-master cluster
    (module-scoped, so it picks the session servers itself rather than `data_redis`)."""
    fixture = "redis_cluster" if request.param == "cluster" else "redis_server"
    url = request.getfixturevalue(fixture).url
    gw = Gateway(url, "gwtest:" + uuid.uuid4().hex[:8],
                 max_frame_bytes=4096, rate_limit_per_second=20, rate_limit_burst=20,
                 flood_strikes=10, max_rooms_per_connection=3, auth_timeout=1,
                 max_outbound_bytes=524288).start()
    yield gw
    gw.terminate()


def room() -> str:
    return "doc:" + uuid.uuid4().hex[:8]


@pytest.fixture
async def bystander(gateway: Gateway) -> AsyncIterator[tuple[Client, str]]:
    """A client in its own room; `assert_fine` proves it still works."""
    name = room()
    client = await Client.open(gateway.url, token("bystander"), rooms=[{"room": name}])
    yield client, name
    await client.close()


async def assert_fine(bystander: tuple[Client, str]) -> None:
    client, name = bystander
    sent = await client.ok("publish", room=name, type="user_message", data={"alive": True})
    msg = await client.recv_type("user_message")
    assert msg["offset"] == sent["offset"] and msg["data"] == {"alive": True}


async def test_connect_join_publish_receive(gateway: Gateway) -> None:
    r = room()
    a = await Client.open(gateway.url, token("alice", name="Alice"), rooms=[{"room": r}])
    assert a.connected["type"] == "system_message"
    data = a.connected["data"]
    assert data["user"] == {"id": "alice", "name": "Alice"}
    assert data["rooms"] == [{"room": r, "offset": "0-0"}]
    assert data["heartbeat"] == 30 and data["session"]["resumed"] is False
    b = await Client.open(gateway.url, token("bob"))
    assert (await b.ok("join", room=r)) == {"room": r, "offset": "0-0"}
    sent = await b.ok("publish", room=r, type="document_update", data={"v": 1})
    for client in (a, b):  # the publisher receives it too
        msg = await client.recv_type("document_update")
        assert msg == {"type": "document_update", "room": r, "offset": sent["offset"],
                       "ts": int(sent["offset"].split("-")[0]),
                       "from": {"id": "bob", "name": "Ada"}, "data": {"v": 1}}
    assert (await b.ok("leave", room=r)) == {"room": r}
    await a.ok("publish", room=r, type="user_message", data={"after": "leave"})
    await a.recv_type("user_message")
    assert (await b.ok("ping")) == {"pong": True}  # b got nothing from r meanwhile
    assert (await b.ok("status", status="away")) == {"status": "away"}
    await a.close()
    await b.close()


async def test_send_reaches_every_connection_of_the_user(gateway: Gateway) -> None:
    target1 = await Client.open(gateway.url, token("carol"))
    target2 = await Client.open(gateway.url, token("carol"))
    sender = await Client.open(gateway.url, token("dave", name="Dave"))
    assert (await sender.ok("send", user="carol", data={"hello": 1})) == {"delivered": 2}
    for t in (target1, target2):
        msg = await t.recv_type("user_message")
        assert msg["from"] == {"id": "dave", "name": "Dave"} and msg["data"] == {"hello": 1}
    for c in (target1, target2, sender):
        await c.close()


async def test_header_authentication(gateway: Gateway) -> None:
    ws = await websockets.connect(gateway.url,
                                  additional_headers={"Authorization": f"Bearer {token('srv')}"})
    client = Client(ws)
    data = await client.ok("connect")
    assert data["user"]["id"] == "srv"
    await client.close()


async def test_tenants_never_see_each_others_rooms(gateway: Gateway) -> None:
    r = room()
    acme = await Client.open(gateway.url, token("a1", tenant="acme"), rooms=[{"room": r}])
    globex = await Client.open(gateway.url, token("g1", tenant="globex"), rooms=[{"room": r}])
    await globex.ok("publish", room=r, type="user_message", data={"secret": "globex"})
    await globex.recv_type("user_message")
    await acme.ok("publish", room=r, type="user_message", data={"mine": "acme"})
    msg = await acme.recv_type("user_message")
    assert msg["data"] == {"mine": "acme"}  # never globex's
    # A user of another tenant is not reachable by `send` either.
    assert (await acme.ok("send", user="g1", data={})) == {"delivered": 0}
    await acme.close()
    await globex.close()


@pytest.mark.parametrize(("frame", "fragment"), [
    ("{not json", "not valid JSON"),
    ('"a string"', "must be a JSON object"),
    ('{"op": "teleport", "ref": 1}', "unknown op"),
    ('{"op": "join", "ref": 1}', "field 'room'"),
    ('{"op": "publish", "room": "doc:1", "type": "user_message", "data": "x", "ref": 1}',
     "field 'data'"),
    ('{"op": "status", "status": 5, "ref": 1}', "field 'status'"),
])
async def test_bad_frames_after_connect_get_bad_request(gateway, bystander, frame, fragment):
    c = await Client.open(gateway.url, token("bad"))
    await c.ws.send(frame)
    msg = await c.recv_type("error")
    assert msg["data"]["code"] == "bad_request" and fragment in msg["data"]["message"]
    if '"ref": 1' in frame and "teleport" in frame:
        assert msg["ref"] == 1
    assert (await c.ok("ping")) == {"pong": True}  # still open
    await assert_fine(bystander)
    await c.close()


async def test_binary_frame_is_a_bad_request(gateway, bystander) -> None:
    c = await Client.open(gateway.url, token("bin"))
    await c.ws.send(b"\x00\x01")
    assert (await c.recv_type("error"))["data"]["code"] == "bad_request"
    await assert_fine(bystander)
    await c.close()


@pytest.mark.parametrize("first", ['{"op": "ping"}', "nonsense", '{"op": "join", "room": "a"}'])
async def test_anything_before_connect_closes_4000(gateway, bystander, first) -> None:
    c = await Client.open(gateway.url)
    await c.ws.send(first)
    assert await c.closed_with() == 4000
    await assert_fine(bystander)


BAD_TOKENS = {
    "expired": lambda: __import__("jwt").encode(
        {"sub": "x", "exp": 1000}, "test-secret-0123456789-0123456789-abcdef", algorithm="HS256"),
    "wrong secret": lambda: __import__("jwt").encode(
        {"sub": "x", "exp": 9999999999}, "wrong-secret-0123456789-0123456789", algorithm="HS256"),
    "alg none": lambda: __import__("jwt").encode({"sub": "x", "exp": 9999999999}, None,
                                                 algorithm="none"),
    "missing sub": lambda: __import__("jwt").encode(
        {"exp": 9999999999}, "test-secret-0123456789-0123456789-abcdef", algorithm="HS256"),
    "garbage": lambda: "garbage",
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
async def test_bad_tokens_close_4001(gateway, bystander, case) -> None:
    c = await Client.open(gateway.url)
    await c.ws.send(json.dumps({"op": "connect", "token": BAD_TOKENS[case](), "ref": 1}))
    assert await c.closed_with() == 4001
    await assert_fine(bystander)


async def test_missing_token_and_auth_timeout_close_4001(gateway, bystander) -> None:
    c = await Client.open(gateway.url)
    await c.ws.send(json.dumps({"op": "connect", "ref": 1}))
    assert await c.closed_with() == 4001
    silent = await Client.open(gateway.url)
    assert await silent.closed_with(timeout=5) == 4001  # auth_timeout=1 in this module
    await assert_fine(bystander)


async def test_oversized_frame_closes_1009(gateway, bystander) -> None:
    c = await Client.open(gateway.url, token("big"))
    await c.ws.send(json.dumps({"op": "ping", "pad": "x" * 8000}))
    assert await c.closed_with() == 1009
    await assert_fine(bystander)


async def test_flood_is_limited_then_closed_4008(gateway, bystander) -> None:
    c = await Client.open(gateway.url, token("flood"))
    for i in range(200):
        try:
            await c.ws.send(json.dumps({"op": "ping", "ref": i}))
        except websockets.ConnectionClosed:
            break
    codes, refs = [], []
    try:
        async with asyncio.timeout(5):
            while True:
                msg = json.loads(await c.ws.recv())
                if msg["type"] == "error":
                    codes.append(msg["data"]["code"])
                    refs.append(msg.get("ref"))
    except websockets.ConnectionClosed:
        pass
    assert "rate_limited" in codes
    assert all(isinstance(ref, int) for ref in refs)  # every refused command keeps its ref
    assert c.ws.close_code == 4008
    await assert_fine(bystander)


async def test_forbidden_rooms_and_room_limit(gateway, bystander) -> None:
    c = await Client.open(gateway.url, token("limited", rooms=("doc:*",), publish=()))
    reply = await c.command("join", room="chat:1")
    assert reply["type"] == "error" and reply["data"]["code"] == "forbidden"
    r = room()
    await c.ok("join", room=r)
    reply = await c.command("publish", room=r, type="user_message", data={})
    assert reply["data"]["code"] == "forbidden"
    reply = await c.command("join", room=r)
    assert reply["data"]["code"] == "conflict"
    await c.ok("join", room=room())
    await c.ok("join", room=room())
    reply = await c.command("join", room=room())  # max_rooms_per_connection=3
    assert reply["data"]["code"] == "too_large"
    reply = await c.command("leave", room="doc:never-joined")
    assert reply["data"]["code"] == "not_found"
    await assert_fine(bystander)
    await c.close()


async def test_connect_reports_each_room_it_could_not_join(gateway) -> None:
    r = room()
    c = await Client.open(gateway.url, token("partial", rooms=("doc:*",)),
                          rooms=[{"room": r}, {"room": "chat:nope"}])
    results = c.connected["data"]["rooms"]
    assert results[0] == {"room": r, "offset": "0-0"}
    assert results[1]["room"] == "chat:nope" and results[1]["error"]["code"] == "forbidden"
    await c.close()


async def test_slow_consumer_is_cut_off_4009_and_never_delays_others(gateway, bystander) -> None:
    r = room()
    slow = RawClient(gateway.port)
    slow.send_text(json.dumps({"op": "connect", "token": token("slow"), "rooms": [{"room": r}]}))
    fast = await Client.open(gateway.url, token("fast"), rooms=[{"room": r}])

    def slow_joined() -> bool:  # its connect reply (rooms joined) arrived; peeking reads nothing
        try:
            return b"system_message" in slow.sock.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False

    await until(slow_joined, timeout=5)
    blob = "y" * 20000
    # 2 MB in bursts of 200 KB through the backend API: past the kernel buffers
    # (socket_send_buffer 256 KiB) and max_outbound_bytes (512 KiB) of a socket that does
    # not read, while a client that reads keeps up.
    async with httpx.AsyncClient(base_url=gateway.http,
                                 headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        for batch in range(10):
            items = [{"room": r, "type": "user_message", "data": {"i": batch * 10 + i, "b": blob}}
                     for i in range(10)]
            assert (await http.post("/v1/publish/batch", json={"items": items})).status_code == 200
            for i in range(10):
                msg = await fast.recv_type("user_message", timeout=5)
                assert msg["data"]["i"] == batch * 10 + i  # in order, none missing
    assert "goldwire_gateway_slow_consumers_dropped_total 0" not in gateway.metrics()
    slow.sock.setblocking(True)
    slow.sock.settimeout(10)
    data = bytearray()
    try:
        while True:
            chunk = slow.sock.recv(65536)
            data += chunk
            if not chunk or b"slow consumer" in data:
                break
    except OSError:
        pass
    assert b"\x88" in data and (4009).to_bytes(2, "big") in data  # a close frame with 4009
    slow.close()
    await assert_fine(bystander)
    await fast.close()


async def test_unknown_path_is_404_and_http_endpoints_answer(gateway) -> None:
    with pytest.raises(websockets.InvalidStatus) as info:
        await websockets.connect(f"ws://127.0.0.1:{gateway.port}/other")
    assert info.value.response.status_code == 404
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert (await http.get("/readyz")).status_code == 200
        text = (await http.get("/metrics")).text
        assert "goldwire_gateway_connections_opened_total" in text
        assert "goldwire_gateway_redis_latency_seconds" in text
