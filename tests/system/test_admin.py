"""The admin API end to end: two real gateways, a real presence service, real sockets.

Every action is called on one gateway and seen by clients of both.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from goldwire.cli.main import main
from goldwire.protocol.codes import CloseCode
from goldwire.protocol.messages import Message, RoomUpdate
from tests.support import API_KEY, Client, Gateway, Presence, token, until

pytestmark = pytest.mark.asyncio


@pytest.fixture
def stack(redis_server, key_prefix) -> Iterator[tuple[Gateway, Gateway, Presence]]:
    gw1 = Gateway(redis_server.url, key_prefix).start()
    gw2 = Gateway(redis_server.url, key_prefix).start()
    presence = Presence(redis_server.url, key_prefix, presence_leave_grace=0.2).start()
    yield gw1, gw2, presence
    for proc in (gw1, gw2, presence):
        proc.terminate()


def room() -> str:
    return "doc:" + uuid.uuid4().hex[:6]


async def admin(gw: Gateway, method: str, path: str, **kw: Any) -> httpx.Response:
    async with gw.api() as http:
        return await http.request(method, "/v1/admin" + path, **kw)


async def connections(gw: Gateway, user: str) -> list[dict[str, Any]]:
    resp = await admin(gw, "GET", f"/users/{user}/connections")
    assert resp.status_code == 200, resp.text
    return resp.json()["connections"]


def room_update(frame: dict[str, Any]) -> RoomUpdate:
    """Check a frame against the protocol's models and return its data."""
    Message.model_validate(frame)
    return RoomUpdate.model_validate(frame["data"])


async def presence_leaves(client: Client) -> list[str]:
    """Presence diffs until one has leaves: their user ids."""
    while True:
        data = (await client.recv_type("presence_update"))["data"]
        if data["kind"] == "diff" and data["leaves"]:
            return [m["user"]["id"] for m in data["leaves"]]


async def test_connections_on_both_gateways_listed_then_disconnected(stack) -> None:
    gw1, gw2, _ = stack
    r = room()
    tab1 = await Client.open(gw1.url, token("ada"), rooms=[{"room": r}])
    tab2 = await Client.open(gw2.url, token("ada"))
    bystander = await Client.open(gw1.url, token("bob"))
    await tab2.ok("status", status="away", meta={"device": "phone"})

    async def both() -> list[dict[str, Any]]:
        listed = await connections(gw1, "ada")
        away = [c for c in listed if c["status"] == "away"]
        joined = [c for c in listed if c["rooms"] == [r]]
        return listed if len(listed) == 2 and away and joined else []

    listed = await until(both)
    ids = {tab1.connected["data"]["conn_id"], tab2.connected["data"]["conn_id"]}
    assert {c["conn"] for c in listed} == ids
    by_node = {c["node"]: c for c in listed}
    assert set(by_node) == {tab1.connected["data"]["node"], tab2.connected["data"]["node"]}
    first = by_node[tab1.connected["data"]["node"]]
    assert first["rooms"] == [r] and first["connected_at"] > 0 and first["device"]
    assert first["session"] == tab1.connected["data"]["session_id"]
    assert by_node[tab2.connected["data"]["node"]]["meta"] == {"device": "phone"}
    assert await connections(gw2, "nobody") == []  # an unknown user: an empty list

    resp = await admin(gw2, "POST", "/users/ada/disconnect", json={})
    assert resp.status_code == 200 and resp.json() == {"nodes": 2, "connections": 2}
    assert await tab1.closed_with() == CloseCode.DISCONNECTED == 4011
    assert await tab2.closed_with() == 4011
    assert tab1.ws.close_reason == "disconnected by an operator"
    await bystander.ok("ping")  # someone else's connection is untouched
    assert await until(_empty(gw1, "ada"))
    resp = await admin(gw1, "POST", "/users/ada/disconnect", json={})
    assert resp.status_code == 404  # no live connection left

    again = await Client.open(gw2.url, token("bob"))
    await until(lambda: _count(gw1, "bob", 2))
    resp = await admin(gw1, "POST", "/users/bob/disconnect",
                       json={"code": 4100, "reason": "maintenance"})
    assert resp.status_code == 200
    assert [await bystander.closed_with(), await again.closed_with()] == [4100, 4100]
    assert again.ws.close_reason == "maintenance"


def _empty(gw: Gateway, user: str) -> Any:
    async def check() -> bool:
        return await connections(gw, user) == []
    return check


async def _count(gw: Gateway, user: str, n: int) -> bool:
    return len(await connections(gw, user)) == n


async def test_kick_tells_the_user_only_and_others_see_a_leave(stack) -> None:
    gw1, gw2, _ = stack
    r = room()
    ada = await Client.open(gw1.url, token("ada"), rooms=[{"room": r}])
    cat = await Client.open(gw1.url, token("cat"), rooms=[{"room": r}])
    obs = await Client.open(gw2.url, token("obs"), rooms=[{"room": r}])
    await until(lambda: _in_room(gw2, "ada", r))

    resp = await admin(gw2, "POST", f"/rooms/{r}/kick", json={"user": "ada", "reason": "spam"})
    assert resp.status_code == 200 and resp.json() == {"nodes": 2, "connections": 1}
    kicked = await ada.recv_type("room_update")
    assert kicked["room"] == r and room_update(kicked).kind == "kicked"
    assert kicked["data"]["reason"] == "spam"
    assert "ada" in await presence_leaves(obs)  # a normal presence leave, after the grace

    # ada is out of the room: a message cat (same gateway) sees is not written to ada.
    async with gw1.api() as http:
        await http.post("/v1/publish", json={"room": r, "type": "user_message",
                                             "data": {"n": 1}})
    await cat.recv_type("user_message")
    await ada.ok("ping")  # would arrive after the message, had ada still been a member
    assert [m for m in ada._backlog if m["type"] in ("user_message", "room_update")] == []
    await obs.ok("ping")
    await cat.ok("ping")
    for other in (obs, cat):
        assert [m for m in other._backlog if m["type"] == "room_update"] == []
    assert (await connections(gw1, "ada"))[0]["rooms"] == []

    resp = await admin(gw1, "POST", f"/rooms/{r}/kick", json={"user": "ada"})
    assert resp.status_code == 404  # no longer in the room
    assert (await ada.ok("join", room=r))["room"] == r  # the token still allows a rejoin
    for client in (ada, cat, obs):
        await client.close()


async def _in_room(gw: Gateway, user: str, r: str) -> bool:
    return any(r in c["rooms"] for c in await connections(gw, user))


async def test_close_sends_closed_to_every_member_and_counts_follow(stack) -> None:
    gw1, gw2, _ = stack
    r = room()
    members = [await Client.open(gw1.url, token("ada"), rooms=[{"room": r}]),
               await Client.open(gw2.url, token("ada"), rooms=[{"room": r}]),
               await Client.open(gw2.url, token("obs"), rooms=[{"room": r}])]
    outsider = await Client.open(gw1.url, token("zed"), rooms=[{"room": room()}])

    async def counts() -> dict[str, Any]:
        resp = await admin(gw1, "GET", f"/rooms/{r}")
        assert resp.status_code == 200, resp.text
        return resp.json()

    assert await until(lambda: _equals(counts, {"tenant": "default", "room": r,
                                                "connections": 3, "users": 2}))
    resp = await admin(gw2, "POST", f"/rooms/{r}/close", json={})
    assert resp.status_code == 200 and resp.json() == {"nodes": 2, "connections": 3}
    for member in members:
        closed = await member.recv_type("room_update")
        assert closed["room"] == r and room_update(closed).kind == "closed"
        await member.ok("ping")  # still connected
    await outsider.ok("ping")
    assert [m for m in outsider._backlog if m["type"] == "room_update"] == []
    assert await until(lambda: _equals(counts, {"tenant": "default", "room": r,
                                                "connections": 0, "users": 0}))
    unknown = await admin(gw2, "GET", "/rooms/nothing-here")
    assert unknown.json()["connections"] == unknown.json()["users"] == 0
    for client in (*members, outsider):
        await client.close()


async def _equals(get: Any, expected: dict[str, Any]) -> bool:
    return await get() == expected


async def test_api_key_required_and_bodies_checked(stack) -> None:
    gw1, _, _ = stack
    calls = [("GET", "/v1/admin/users/ada/connections", None),
             ("POST", "/v1/admin/users/ada/disconnect", {}),
             ("POST", "/v1/admin/rooms/doc:1/kick", {"user": "ada"}),
             ("POST", "/v1/admin/rooms/doc:1/close", {}),
             ("GET", "/v1/admin/rooms/doc:1", None)]
    async with httpx.AsyncClient(base_url=gw1.http) as http:
        for method, path, body in calls:
            assert (await http.request(method, path, json=body)).status_code == 401
            wrong = await http.request(method, path, json=body,
                                       headers={"Authorization": "Bearer wrong"})
            assert wrong.status_code == 401
    bad = [("/users/ada/disconnect", {"code": 1000}),
           ("/users/ada/disconnect", {"code": 5000}),
           ("/users/ada/disconnect", {"reason": "x" * 121}),
           ("/users/ada/disconnect", {"tenant": "a/b"}),
           ("/rooms/doc:1/kick", {}),
           ("/rooms/doc:1/kick", {"user": "ada", "extra": 1}),
           ("/rooms/bad room/close", {})]
    for path, body in bad:
        resp = await admin(gw1, "POST", path, json=body)
        assert resp.status_code == 422, (path, body, resp.text)
    assert (await admin(gw1, "GET", "/rooms/doc:1", params={"tenant": "a b"})).status_code == 422


def cli(gw: Gateway, *argv: str, api_key: str = API_KEY) -> Any:
    """`goldwire admin ...` in a thread (it makes blocking calls): (exit code, out, err)."""
    out, err = io.StringIO(), io.StringIO()

    def call() -> int:
        with contextlib.redirect_stderr(err):
            return main(["admin", *argv, "--url", gw.http], {"API_KEYS": f"{api_key},other"},
                        out)
    return asyncio.to_thread(call), out, err


async def test_the_cli_drives_every_admin_call(stack) -> None:
    gw1, gw2, _ = stack
    r = "team/" + room()  # a `/` in the name travels as %2F
    ada = await Client.open(gw1.url, token("ada"), rooms=[{"room": r}])
    obs = await Client.open(gw2.url, token("obs"), rooms=[{"room": r}])
    await until(lambda: _in_room(gw1, "ada", r))

    run, out, _ = cli(gw2, "connections", "ada")
    assert await run == 0
    assert [c["conn"] for c in json.loads(out.getvalue())["connections"]] == \
        [ada.connected["data"]["conn_id"]]

    async def counted() -> bool:
        run, out, _ = cli(gw1, "room", r)
        return await run == 0 and json.loads(out.getvalue())["users"] == 2
    await until(counted)

    run, out, _ = cli(gw1, "kick", r, "ada", "--reason", "spam")
    assert await run == 0 and json.loads(out.getvalue())["connections"] == 1
    assert (await ada.recv_type("room_update"))["data"] == {"kind": "kicked", "reason": "spam"}

    run, out, _ = cli(gw1, "close", r)
    assert await run == 0
    assert (await obs.recv_type("room_update"))["data"] == {"kind": "closed"}

    run, _, err = cli(gw1, "kick", r, "ada")
    assert await run == 1 and err.getvalue().startswith("goldwire admin kick: 404 ")
    run, _, err = cli(gw1, "room", r, api_key="wrong")
    assert await run == 1 and "401 unknown API key" in err.getvalue()

    run, _, _ = cli(gw2, "disconnect", "ada", "--code", "4100", "--reason", "bye")
    assert await run == 0
    assert await ada.closed_with() == 4100 and ada.ws.close_reason == "bye"
    await obs.close()


async def test_a_dead_gateways_connections_are_not_listed(redis_server, key_prefix) -> None:
    gw1 = Gateway(redis_server.url, key_prefix, node_ttl=1).start()
    gw2 = Gateway(redis_server.url, key_prefix, node_ttl=1).start()
    try:
        here = await Client.open(gw1.url, token("ada"))
        await Client.open(gw2.url, token("ada"))
        await until(lambda: _count(gw1, "ada", 2))
        gw2.kill()  # kill -9: its record stays in Redis, but its node is no longer alive
        listed = await until(lambda: _listed_if(gw1, "ada", 1))
        assert listed[0]["conn"] == here.connected["data"]["conn_id"]
        await here.close()
    finally:
        gw1.terminate()
        gw2.kill()


async def _listed_if(gw: Gateway, user: str, n: int) -> list[dict[str, Any]]:
    listed = await connections(gw, user)
    return listed if len(listed) == n else []
