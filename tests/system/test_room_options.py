"""ROOM_OPTIONS end to end: a room without presence sends no states or diffs and
leaves no presence behind, and a pattern's history size bounds what recovers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support import API_KEY, Client, Gateway, Presence, token, until

pytestmark = pytest.mark.asyncio

RULES = ('[{"pattern": "lobby:*", "presence": false},'
         ' {"pattern": "short:*", "history_size": 1}]')


@pytest.fixture
def stack(data_redis, key_prefix) -> Iterator[tuple[Gateway, Gateway, Presence]]:
    gws = [Gateway(data_redis.url, key_prefix, room_options=RULES).start() for _ in range(2)]
    presence = Presence(data_redis.url, key_prefix).start()
    yield gws[0], gws[1], presence
    for proc in (*gws, presence):
        proc.terminate()


async def frames_of(client: Client, seconds: float) -> list[dict]:
    got = []
    try:
        while True:
            got.append(await client.recv(timeout=seconds))
    except TimeoutError:
        return got


async def test_a_room_without_presence_sends_none_and_keeps_none(stack) -> None:
    gw1, gw2, presence = stack
    lobby, doc = "lobby:" + uuid.uuid4().hex[:6], "doc:" + uuid.uuid4().hex[:6]
    a = await Client.open(gw1.url, token("ann"), rooms=[{"room": lobby}, {"room": doc}])
    joined = {r["room"]: r for r in a.connected["data"]["rooms"]}
    assert joined[lobby]["presence"] is False and "presence" not in joined[doc]
    b = await Client.open(gw2.url, token("bob"), rooms=[{"room": lobby}, {"room": doc}])
    # The document room shows both; the lobby nothing, though it carries messages.
    async def doc_shows_both() -> bool:
        msg = await a.recv_type("presence_update", timeout=5)
        members = msg["data"].get("members") or msg["data"].get("joins") or []
        return msg["room"] == doc and any(m["user"]["id"] == "bob" for m in members)
    await until(doc_shows_both)
    await b.ok("publish", room=lobby, type="user_message", data={"hi": 1})
    assert (await a.recv_type("user_message"))["room"] == lobby
    seen = await frames_of(a, 1.5) + await frames_of(b, 0.5) + a._backlog + b._backlog
    assert not [f for f in seen if f["type"] == "presence_update" and f["room"] == lobby]
    async with httpx.AsyncClient(base_url=presence.http,
                                 headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        resp = await http.get(f"/v1/presence/rooms/{lobby}")
        assert resp.status_code == 200 and resp.json()["members"] == []
        resp = await http.get(f"/v1/presence/rooms/{doc}")
        assert {m["user"]["id"] for m in resp.json()["members"]} == {"ann", "bob"}
    # Leaving and disconnecting from the lobby leave nothing for presence to undo.
    await b.ok("leave", room=lobby)
    await b.close()
    await asyncio.sleep(0.5)
    await a.close()


async def test_a_patterns_history_size_bounds_recovery(stack) -> None:
    gw1, _, _ = stack
    short, doc = "short:" + uuid.uuid4().hex[:6], "doc:" + uuid.uuid4().hex[:6]
    async with httpx.AsyncClient(base_url=gw1.http,
                                 headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        first = {}
        for room in (short, doc):
            for i in range(250):  # past the approximate trim's granularity (100 per node)
                resp = await http.post("/v1/publish", json={
                    "room": room, "type": "document_update", "data": {"i": i}})
                first.setdefault(room, resp.json()["offset"])
    c = await Client.open(gw1.url, token("cy"), rooms=[{"room": short, "since": first[short]},
                                                        {"room": doc, "since": first[doc]}])
    recovered = {r["room"]: r["recovered"] for r in c.connected["data"]["rooms"]}
    assert recovered == {short: False, doc: True}
    await c.close()
