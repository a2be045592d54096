"""Room names and user ids with `/` on every HTTP route of presence, sessions, activity.

Names like `doc:a/b` and user ids like `team/ada` are valid (names.py); each route is
asked with the `/` as it is and `%2F`-encoded (what the gateway sends), through real
HTTP to real processes fed by a real gateway.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import API_KEY, Activity, Client, Gateway, Presence, Sessions, token, until

pytestmark = pytest.mark.asyncio

USER, ROOM = "team/ada", "doc:a/b"
SPELLINGS = {USER: ("team/ada", "team%2Fada", "team%2fada"),
             ROOM: ("doc:a/b", "doc:a%2Fb")}


@pytest.fixture
def stack(redis_server, key_prefix) -> Iterator[dict[str, Any]]:
    procs = {"presence": Presence(redis_server.url, key_prefix).start(),
             "sessions": Sessions(redis_server.url, key_prefix).start(),
             "activity": Activity(redis_server.url, key_prefix).start(),
             "gateway": Gateway(redis_server.url, key_prefix).start()}
    yield procs
    for proc in procs.values():
        proc.terminate()


async def test_presence_routes(stack) -> None:
    ada = await Client.open(stack["gateway"].url, token(USER), rooms=[{"room": ROOM}])
    await ada.recv_type("presence_update")  # presence stored the join
    async with stack["presence"].api() as http:
        for room in SPELLINGS[ROOM]:
            got = await http.get(f"/v1/presence/rooms/{room}")
            assert got.status_code == 200, got.text
            assert got.json()["room"] == ROOM
            assert [m["user"]["id"] for m in got.json()["members"]] == [USER]
        for user in SPELLINGS[USER]:
            got = await http.get(f"/v1/presence/users/{user}")
            assert got.status_code == 200, got.text
            assert got.json()["status"] == "online", got.json()
        many = await http.get("/v1/presence/rooms", params={"rooms": f"{ROOM},doc:x/y"})
        assert [m["user"]["id"] for m in many.json()["rooms"][ROOM]["members"]] == [USER]
        # A comma in the path is not a list; a control character is not a user id.
        assert (await http.get("/v1/presence/rooms/doc:a,doc:b")).status_code == 422
        assert (await http.get("/v1/presence/users/a%09b")).status_code == 422
    await ada.close()


async def test_sessions_routes(stack) -> None:
    gateway, sessions = stack["gateway"], stack["sessions"]
    ada = await Client.open(gateway.url, token(USER), rooms=[{"room": ROOM}])
    sid = ada.connected["data"]["session"]["id"]
    async with httpx.AsyncClient(base_url=gateway.http,
                                 headers={"Authorization": f"Bearer {API_KEY}"}) as gw:
        sent = await gw.post("/v1/publish", json={"user": USER, "type": "notification",
                                                  "data": {"title": "hi"}})
        assert sent.json()["delivered"] == 1, sent.text
    note = await ada.recv_type("notification")

    async with sessions.api() as http:
        for i, user in enumerate(SPELLINGS[USER]):
            base = f"/v1/users/{user}"
            listed = await http.get(f"{base}/sessions")
            assert [s["id"] for s in listed.json()["sessions"]] == [sid], listed.text
            boot = await http.get(f"{base}/bootstrap", params={"session": sid})
            assert boot.json()["session"]["id"] == sid, boot.text
            put = await http.put(f"{base}/preferences", json={"values": {"n": i}, "version": i})
            assert put.status_code == 200 and put.json()["version"] == i + 1, put.text
            got = await http.get(f"{base}/preferences")
            assert got.json() == {"values": {"n": i}, "version": i + 1}
            inbox = await http.get(f"{base}/notifications")
            assert [n["id"] for n in inbox.json()["items"]] == [note["id"]], inbox.text
            ack = await http.post(f"{base}/notifications/ack", json={"ids": [note["id"]]})
            assert ack.json() == {"unread": 0}, ack.text
        # Nothing leaked to a user named by a part of the id.
        assert (await http.get("/v1/users/team/sessions")).json()["sessions"] == []
        assert (await http.get("/v1/users/ada/preferences")).json()["version"] == 0
        assert (await http.get("/v1/users//sessions")).status_code == 422
        revoked = await http.delete(f"/v1/users/team%2Fada/sessions/{sid}")
        assert revoked.status_code == 200, revoked.text
        assert (await http.delete(f"/v1/users/team/ada/sessions/{sid}")).status_code == 404
    assert await ada.closed_with() == 4010


async def test_activity_routes(stack) -> None:
    gateway, activity = stack["gateway"], stack["activity"]
    ada = await Client.open(gateway.url, token(USER), rooms=[{"room": ROOM}])
    # An id ending in `/summary`: its history is asked with `%2F`, its summary plainly.
    odd = await Client.open(gateway.url, token("x/summary"), rooms=[{"room": ROOM}])
    async with activity.api() as http:
        async def recorded() -> bool:
            got = await http.get(f"/v1/activity/rooms/{ROOM}")
            return {i.get("user") for i in got.json()["items"]} >= {USER, "x/summary"}

        await until(recorded, timeout=15, interval=0.1)
        for room in SPELLINGS[ROOM]:
            got = await http.get(f"/v1/activity/rooms/{room}", params={"type": "join"})
            assert {i["user"] for i in got.json()["items"]} == {USER, "x/summary"}, got.text
        for user in SPELLINGS[USER]:
            got = await http.get(f"/v1/activity/users/{user}")
            assert got.status_code == 200, got.text
            assert {i["kind"] for i in got.json()["items"]} >= {"connect", "join"}
            assert all(i["user"] == USER for i in got.json()["items"])
            summary = await http.get(f"/v1/activity/users/{user}/summary")
            assert summary.status_code == 200, summary.text
            assert summary.json()["last_active"], summary.json()
        history = await http.get("/v1/activity/users/x%2Fsummary", params={"limit": 1})
        assert history.status_code == 200, history.text
        (item,) = history.json()["items"]
        assert item["user"] == "x/summary"
        summary = await http.get("/v1/activity/users/x/summary/summary")
        assert summary.status_code == 200 and summary.json()["last_active"], summary.text
        assert (await http.get("/v1/activity/users/x%2Fsummary",
                               params={"limit": 0})).status_code == 422
    await ada.close()
    await odd.close()
