"""Sessions end to end: resume on another gateway, revoke, expiry, state, preferences."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support import API_KEY, Client, Gateway, Sessions, token, until

pytestmark = pytest.mark.asyncio


@pytest.fixture
def stack(data_redis, key_prefix) -> Iterator[tuple[Gateway, Gateway, Sessions]]:
    """On a plain Redis and on the 3-master cluster (tests/conftest.py `data_redis`)."""
    gw1 = Gateway(data_redis.url, key_prefix).start()
    gw2 = Gateway(data_redis.url, key_prefix).start()
    sessions = Sessions(data_redis.url, key_prefix).start()
    yield gw1, gw2, sessions
    for proc in (gw1, gw2, sessions):
        proc.terminate()


async def publish(gw: Gateway, room: str, seqs: range) -> list[str]:
    async with httpx.AsyncClient(base_url=gw.http,
                                 headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        return [(await http.post("/v1/publish", json={
            "room": room, "type": "document_update", "data": {"seq": i}})).json()["offset"]
            for i in seqs]


async def session_rooms(sessions: Sessions, user: str) -> list[dict]:
    async with sessions.api() as http:
        return (await http.get(f"/v1/users/{user}/sessions")).json()["sessions"]


async def test_refresh_resumes_on_another_gateway_and_misses_nothing(stack) -> None:
    gw1, gw2, sessions = stack
    tab = await Client.open(gw1.url, token("ann"), rooms=[{"room": "doc:a"}, {"room": "doc:b"}])
    session = tab.connected["data"]["session"]
    assert session["resumed"] is False and session["rooms"] == []
    await tab.ok("session", state={"panel": "comments", "scroll": 120})
    await publish(gw1, "doc:a", range(3))
    for _ in range(3):
        await tab.recv_type("document_update")
    await tab.close()  # a refresh: the page goes away cleanly

    async def disconnect_recorded() -> bool:
        listed = await session_rooms(sessions, "ann")
        return bool(listed) and listed[0]["connections"] == 0

    await until(disconnect_recorded, timeout=10)
    await publish(gw2, "doc:a", range(3, 8))  # while the page reloads
    await publish(gw2, "doc:b", range(100, 102))

    again = await Client.open(gw2.url, token("ann"), session_id=session["id"])
    resumed = again.connected["data"]["session"]
    assert resumed["id"] == session["id"] and resumed["resumed"] is True
    assert resumed["state"] == {"panel": "comments", "scroll": 120}
    assert {r["room"] for r in resumed["rooms"]} == {"doc:a", "doc:b"}
    seen: dict[str, list[int]] = {"doc:a": [], "doc:b": []}
    for entry in resumed["rooms"]:  # the client had kept nothing: the session's offsets
        reply = await again.ok("join", room=entry["room"], since=entry["offset"])
        assert reply["recovered"] is True
    while len(seen["doc:a"]) < 5 or len(seen["doc:b"]) < 2:
        msg = await again.recv_type("document_update")
        seen[msg["room"]].append(msg["data"]["seq"])
    assert seen == {"doc:a": [3, 4, 5, 6, 7], "doc:b": [100, 101]}
    await again.close()


async def test_only_the_owner_resumes_a_live_session(stack) -> None:
    gw1, _, _ = stack
    mine = await Client.open(gw1.url, token("carl"))
    sid = mine.connected["data"]["session"]["id"]
    thief = await Client.open(gw1.url, token("mallory"), session_id=sid)
    stolen = thief.connected["data"]["session"]
    assert stolen["resumed"] is False and stolen["id"] != sid
    other_tenant = await Client.open(gw1.url, token("carl", tenant="globex"), session_id=sid)
    assert other_tenant.connected["data"]["session"]["resumed"] is False
    unknown = await Client.open(gw1.url, token("carl"), session_id="no-such-session")
    assert unknown.connected["data"]["session"]["resumed"] is False
    for c in (mine, thief, other_tenant, unknown):
        await c.close()


async def test_revoke_closes_its_sockets_on_every_gateway_and_it_never_resumes(stack) -> None:
    gw1, gw2, sessions = stack
    laptop = await Client.open(gw1.url, token("dora"))
    phone = await Client.open(gw2.url, token("dora"))
    sid = laptop.connected["data"]["session"]["id"]
    second_tab = await Client.open(gw2.url, token("dora"), session_id=sid)  # same session
    listed = await session_rooms(sessions, "dora")
    assert {s["id"] for s in listed} == {sid, phone.connected["data"]["session"]["id"]}

    started = time.monotonic()
    async with sessions.api() as http:
        assert (await http.delete(f"/v1/users/dora/sessions/{sid}")).status_code == 200
        assert (await http.delete(f"/v1/users/dora/sessions/{sid}")).status_code == 404
    codes = await asyncio.gather(laptop.closed_with(5), second_tab.closed_with(5))
    assert codes == [4010, 4010]
    print(f"revoked sockets closed in {time.monotonic() - started:.3f}s")
    assert time.monotonic() - started < 1.0  # the bound for revocation
    assert (await phone.ok("ping")) == {"pong": True}  # the other device is untouched
    back = await Client.open(gw1.url, token("dora"), session_id=sid)
    assert back.connected["data"]["session"]["resumed"] is False
    for c in (phone, back):
        await c.close()


async def test_sessions_expire_after_their_sliding_timeout(redis_server, key_prefix) -> None:
    timeout = {"session_timeout_hours": 1.5 / 3600}  # 1.5 s
    gw = Gateway(redis_server.url, key_prefix, **timeout).start()
    sessions = Sessions(redis_server.url, key_prefix, sessions_cleanup_interval=1,
                        **timeout).start()
    try:
        c = await Client.open(gw.url, token("eve"))
        sid = c.connected["data"]["session"]["id"]
        await c.close()

        async def expired() -> bool:  # the list leaves out sessions past their expiry
            return await session_rooms(sessions, "eve") == []

        await until(expired, timeout=10)
        late = await Client.open(gw.url, token("eve"), session_id=sid)
        assert late.connected["data"]["session"]["resumed"] is False
        await late.close()
    finally:
        gw.terminate()
        sessions.terminate()


async def test_session_state_is_size_limited(stack) -> None:
    gw1, _, _ = stack
    c = await Client.open(gw1.url, token("fay"))
    reply = await c.command("session", state={"blob": "x" * 20000})
    assert reply["type"] == "error" and reply["data"]["code"] == "too_large"
    assert (await c.ok("session", state={"ok": True}))["session_id"]
    await c.close()


async def test_preferences_sync_and_conflicts(stack) -> None:
    gw1, gw2, sessions = stack
    laptop = await Client.open(gw1.url, token("gus"))
    phone = await Client.open(gw2.url, token("gus"))
    assert (await laptop.ok("prefs", values={"theme": "dark"}, version=0)) == {"version": 1}
    pushed = await phone.recv_type("system_message")
    assert pushed["data"] == {"kind": "preferences", "values": {"theme": "dark"}, "version": 1}
    stale = await phone.command("prefs", values={"theme": "light"}, version=0)
    assert stale["data"]["code"] == "conflict"
    assert stale["data"]["values"] == {"theme": "dark"} and stale["data"]["version"] == 1

    async with sessions.api() as http:
        got = (await http.get("/v1/users/gus/preferences")).json()
        assert got == {"values": {"theme": "dark"}, "version": 1}
        put = await http.put("/v1/users/gus/preferences",
                             json={"values": {"theme": "sepia"}, "version": 1})
        assert put.json() == {"values": {"theme": "sepia"}, "version": 2}
        results = await asyncio.gather(*(http.put("/v1/users/gus/preferences", json={
            "values": {"theme": f"t{i}"}, "version": 2}) for i in range(5)))
        assert sorted(r.status_code for r in results) == [200, 409, 409, 409, 409]
        conflict = next(r for r in results if r.status_code == 409).json()
        assert conflict["version"] == 3
        deep: dict = {}
        node = deep
        for _ in range(20):
            node["x"] = {}
            node = node["x"]
        assert (await http.put("/v1/users/gus/preferences",
                               json={"values": deep, "version": 3})).status_code == 422
    # every change reached both devices, in order (the phone's first was read above)
    for client, expected in ((laptop, [1, 2, 3]), (phone, [2, 3])):
        versions = []
        while len(versions) < len(expected):
            msg = await client.recv_type("system_message")
            if msg["data"].get("kind") == "preferences":
                versions.append(msg["data"]["version"])
        assert versions == expected
    await laptop.close()
    await phone.close()


async def test_notifications_are_kept_pushed_counted_and_read_everywhere(stack) -> None:
    gw1, gw2, sessions = stack
    laptop = await Client.open(gw1.url, token("hal"))
    phone = await Client.open(gw2.url, token("hal"))
    async with httpx.AsyncClient(base_url=gw1.http,
                                 headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        for i in range(3):
            body = {"user": "hal", "type": "notification", "data": {"title": f"n{i}"},
                    "idempotency_key": f"note-{i}"}
            first = await http.post("/v1/publish", json=body)
            assert first.json() == {"delivered": 2, "duplicate": False}
            again = await http.post("/v1/publish", json=body)  # a retry: kept once
            assert again.json()["duplicate"] is True
    pushed = [await laptop.recv_type("notification") for _ in range(3)]
    assert [p["data"]["title"] for p in pushed] == ["n0", "n1", "n2"]
    assert [p["unread"] for p in pushed] == [1, 2, 3] and all(p["id"] for p in pushed)
    assert [(await phone.recv_type("notification"))["id"] for _ in range(3)] == \
        [p["id"] for p in pushed]

    async with sessions.api() as http:
        inbox = (await http.get("/v1/users/hal/notifications", params={"limit": 2})).json()
        assert inbox["unread"] == 3 and [i["data"]["title"] for i in inbox["items"]] == \
            ["n2", "n1"]
        older = (await http.get("/v1/users/hal/notifications",
                                params={"before": inbox["next"]})).json()
        assert [i["data"]["title"] for i in older["items"]] == ["n0"] and older["next"] is None
        ack = await http.post("/v1/users/hal/notifications/ack", json={"ids": [pushed[2]["id"]]})
        assert ack.json() == {"unread": 2}
        ack = await http.post("/v1/users/hal/notifications/ack", json={"upto": pushed[1]["id"]})
        assert ack.json() == {"unread": 0}
        assert (await http.post("/v1/users/hal/notifications/ack", json={})).status_code == 422
        inbox = (await http.get("/v1/users/hal/notifications")).json()
        assert inbox["unread"] == 0 and all(i["read"] for i in inbox["items"])
    for device in (laptop, phone):  # the read state reached every device
        reads = []
        while len(reads) < 2:
            msg = await device.recv_type("system_message")
            if msg["data"].get("kind") == "notifications_read":
                reads.append(msg["data"]["unread"])
        assert reads == [2, 0]
    await laptop.close()
    await phone.close()
