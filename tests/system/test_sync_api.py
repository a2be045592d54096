"""`/v2/sync/*` through the gateway, on real processes: every endpoint's answer, its
auth, tenant isolation, a stopped service, and generated input that never yields a 5xx."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import API_KEY, Client, Gateway, Presence, Sessions, token, until

ENDPOINTS = [
    ("GET", "/v2/sync/bootstrap", None),
    ("GET", "/v2/sync/rooms/doc:1/history", None),
    ("GET", "/v2/sync/presence?rooms=doc:1", None),
    ("GET", "/v2/sync/preferences", None),
    ("PUT", "/v2/sync/preferences", {"values": {}, "version": 0}),
    ("GET", "/v2/sync/notifications", None),
    ("POST", "/v2/sync/notifications/ack", {"upto": "1-0"}),
    ("GET", "/v2/sync/sessions", None),
    ("DELETE", "/v2/sync/sessions/abc", None),
    ("GET", "/v2/sync/activity", None),
]


@pytest.fixture(scope="module")
def stack(redis_server) -> Iterator[tuple[Gateway, Sessions, Presence]]:
    prefix = "gwtest:" + uuid.uuid4().hex[:8]
    sessions = Sessions(redis_server.url, prefix).start()
    presence = Presence(redis_server.url, prefix).start()
    gw = Gateway(redis_server.url, prefix, sessions_url=sessions.http,
                 presence_url=presence.http, activity_url="http://127.0.0.1:9").start()
    yield gw, sessions, presence
    for proc in (gw, sessions, presence):
        proc.terminate()


@pytest.fixture
async def http(stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack[0].http, timeout=10) as client:
        yield client


def bearer(tok: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}", **headers}


async def publish(gw: Gateway, body: dict) -> dict:
    async with httpx.AsyncClient(base_url=gw.http,
                                 headers={"Authorization": f"Bearer {API_KEY}"}) as api:
        return (await api.post("/v1/publish", json=body)).json()


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=[e[1] for e in ENDPOINTS])
async def test_every_endpoint_wants_a_valid_user_token(http, method, path, body) -> None:
    for headers in ({}, bearer("garbage"), bearer(token(ttl=1)[:-4] + "AAAA"),
                    {"Authorization": f"Basic {API_KEY}"}):
        resp = await http.request(method, path, json=body, headers=headers)
        assert resp.status_code == 401, (headers, resp.text)
        assert resp.json()["detail"]["code"] == "unauthorized"


async def test_bootstrap_gives_a_page_everything_in_one_call(stack, http) -> None:
    gw, _, _ = stack
    user = "boot-" + uuid.uuid4().hex[:4]
    c = await Client.open(gw.url, token(user, name="Bo"), rooms=[{"room": "doc:boot"}])
    sid = c.connected["data"]["session"]["id"]
    await c.ok("session", state={"tab": "notes"})
    await c.ok("prefs", values={"lang": "fr"}, version=0)
    await publish(gw, {"user": user, "type": "notification", "data": {"t": 1}})

    async def joined() -> dict | None:  # the join reaches the services (sessions, presence)
        resp = await http.get("/v2/sync/bootstrap", params={"rooms": "doc:boot"},
                              headers=bearer(token(user, name="Bo"),
                                             **{"X-Goldwire-Session": sid}))
        data = resp.json()
        assert resp.status_code == 200, data
        seen = data["session"]["rooms"] and data["presence"].get("doc:boot", {}).get("members")
        return data if seen else None

    data = await until(joined, timeout=10)
    assert data["user"] == {"id": user, "name": "Bo"} and data["tenant"] == "default"
    assert data["session"]["id"] == sid and data["session"]["state"] == {"tab": "notes"}
    assert data["session"]["rooms"][0]["room"] == "doc:boot"
    assert data["preferences"] == {"values": {"lang": "fr"}, "version": 1}
    assert data["unread"] == 1
    assert [m["user"]["id"] for m in data["presence"]["doc:boot"]["members"]] == [user]
    await c.close()


async def test_history_since_an_offset_and_cold(stack, http) -> None:
    gw, _, _ = stack
    room = "doc:" + uuid.uuid4().hex[:6]
    offsets = [(await publish(gw, {"room": room, "type": "document_update",
                                   "data": {"n": i}}))["offset"] for i in range(5)]
    tok = token("reader")
    resp = await http.get(f"/v2/sync/rooms/{room}/history", params={"since": offsets[1]},
                          headers=bearer(tok))
    data = resp.json()
    assert data["recovered"] is True and data["offset"] == offsets[-1]
    assert [m["data"]["n"] for m in data["messages"]] == [2, 3, 4]
    assert [m["offset"] for m in data["messages"]] == offsets[2:]
    cold = (await http.get(f"/v2/sync/rooms/{room}/history", params={"limit": 2},
                           headers=bearer(tok))).json()
    assert [m["data"]["n"] for m in cold["messages"]] == [3, 4]
    forbidden = await http.get(f"/v2/sync/rooms/{room}/history",
                               headers=bearer(token("reader", rooms=("chat:*",))))
    assert forbidden.status_code == 403 and forbidden.json()["detail"]["room"] == room
    other_tenant = (await http.get(f"/v2/sync/rooms/{room}/history",
                                   headers=bearer(token("reader", tenant="globex")))).json()
    assert other_tenant["messages"] == [] and other_tenant["offset"] == "0-0"


async def test_preferences_notifications_and_sessions(stack, http) -> None:
    gw, _, _ = stack
    user = "pn-" + uuid.uuid4().hex[:4]
    tok = token(user)
    assert (await http.get("/v2/sync/preferences", headers=bearer(tok))).json() == \
        {"values": {}, "version": 0}
    put = await http.put("/v2/sync/preferences", json={"values": {"a": 1}, "version": 0},
                         headers=bearer(tok))
    assert put.json() == {"values": {"a": 1}, "version": 1}
    stale = await http.put("/v2/sync/preferences", json={"values": {"a": 2}, "version": 0},
                           headers=bearer(tok))
    assert stale.status_code == 409 and stale.json()["values"] == {"a": 1}

    first = await publish(gw, {"user": user, "type": "notification", "data": {"t": "x"}})
    assert first["delivered"] == 0  # kept in the inbox though no one is connected
    inbox = (await http.get("/v2/sync/notifications", headers=bearer(tok))).json()
    assert inbox["unread"] == 1 and inbox["items"][0]["data"] == {"t": "x"}
    ack = await http.post("/v2/sync/notifications/ack", json={"ids": [inbox["items"][0]["id"]]},
                          headers=bearer(tok))
    assert ack.json() == {"unread": 0}
    assert (await http.post("/v2/sync/notifications/ack", json={},
                            headers=bearer(tok))).status_code == 400

    laptop = await Client.open(gw.url, tok)
    phone = await Client.open(gw.url, tok)
    mine = laptop.connected["data"]["session"]["id"]
    listed = (await http.get("/v2/sync/sessions",
                             headers=bearer(tok, **{"X-Goldwire-Session": mine}))).json()
    assert {s["id"]: s["current"] for s in listed["sessions"]} == {
        mine: True, phone.connected["data"]["session"]["id"]: False}
    gone = await http.delete(f"/v2/sync/sessions/{phone.connected['data']['session']['id']}",
                             headers=bearer(tok))
    assert gone.status_code == 200
    assert await phone.closed_with(5) == 4010
    assert (await http.delete("/v2/sync/sessions/nope", headers=bearer(tok))).status_code == 404
    other = await http.delete(f"/v2/sync/sessions/{mine}", headers=bearer(token("intruder")))
    assert other.status_code == 404  # someone else's session id is not theirs to revoke
    await laptop.close()


async def test_a_stopped_service_is_a_503_not_a_hang(stack, http) -> None:
    resp = await http.get("/v2/sync/activity", headers=bearer(token()))  # nothing on port 9
    assert resp.status_code == 503 and resp.json()["detail"]["code"] == "unavailable"


async def test_sessions_service_down_is_503(redis_server, key_prefix) -> None:
    sessions = Sessions(redis_server.url, key_prefix).start()
    gw = Gateway(redis_server.url, key_prefix, sessions_url=sessions.http).start()
    try:
        sessions.kill()
        async with httpx.AsyncClient(base_url=gw.http, timeout=10) as http:
            for method, path, body in ENDPOINTS:
                if path.startswith(("/v2/sync/preferences", "/v2/sync/notifications",
                                    "/v2/sync/sessions", "/v2/sync/bootstrap")):
                    resp = await http.request(method, path, json=body, headers=bearer(token()))
                    assert resp.status_code == 503, (path, resp.text)
    finally:
        gw.terminate()


text = st.text(min_size=0, max_size=40)
values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                      lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=20)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path_part=text, since=text, limit=text, rooms=text, body=values, before=text)
def test_generated_input_never_gets_a_5xx(stack, path_part, since, limit, rooms, body,
                                           before) -> None:
    gw = stack[0]
    headers = bearer(token("fuzz"))
    path_part = quote(path_part, safe="")
    with httpx.Client(base_url=gw.http, timeout=10) as http:
        calls = [
            ("GET", f"/v2/sync/rooms/{path_part}/history", {"since": since, "limit": limit}),
            ("GET", "/v2/sync/presence", {"rooms": rooms}),
            ("GET", "/v2/sync/bootstrap", {"rooms": rooms}),
            ("GET", "/v2/sync/notifications", {"limit": limit, "before": before}),
            ("DELETE", f"/v2/sync/sessions/{path_part}", {}),
        ]
        for method, path, params in calls:
            resp = http.request(method, path, params=params, headers=headers)
            assert resp.status_code < 500, (path, params, resp.text)
        for method, path in (("PUT", "/v2/sync/preferences"),
                             ("POST", "/v2/sync/notifications/ack")):
            resp = http.request(method, path, content=json.dumps(body), headers=headers)
            assert resp.status_code < 500 or resp.status_code == 409, (path, body, resp.text)


async def test_api_use_is_recorded_for_the_activity_service(stack, http, redis_server) -> None:
    import redis.asyncio as aioredis

    from tests.event_streams import read_all

    gw = stack[0]
    user = "api-" + uuid.uuid4().hex[:4]
    assert (await http.get("/v2/sync/preferences", headers=bearer(token(user)))).status_code \
        == 200
    assert (await http.get("/v2/sync/preferences")).status_code == 401
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        async def recorded() -> list[dict[str, str]] | None:
            entries = [f for _, f in await read_all(client, gw.prefix)
                       if f.get("kind") == "api" and f.get("route") == "/v2/sync/preferences"]
            return entries if any(e.get("user") == user for e in entries) else None

        entries = await until(recorded, timeout=2.5)
    finally:
        await client.aclose()
    mine = [e for e in entries if e.get("user") == user]
    assert mine and mine[-1]["method"] == "GET" and mine[-1]["code"] == "200"
    assert any(e["code"] == "401" and "user" not in e for e in entries)


async def test_own_activity_through_the_gateway(redis_server, key_prefix) -> None:
    from tests.support import Activity

    activity = Activity(redis_server.url, key_prefix).start()
    gw = Gateway(redis_server.url, key_prefix, activity_url=activity.http).start()
    try:
        user = "act-" + uuid.uuid4().hex[:4]
        c = await Client.open(gw.url, token(user), rooms=[{"room": "doc:act"}])
        await c.ok("publish", room="doc:act", type="user_message", data={})
        await c.close()
        async with httpx.AsyncClient(base_url=gw.http, timeout=10) as http:
            async def recorded() -> list[str] | None:
                data = (await http.get("/v2/sync/activity", headers=bearer(token(user)))).json()
                # Each poll is itself recorded (an `api` item) and may land among the
                # socket's items: only the socket's own kinds are asserted.
                items = [item for item in data.get("items", []) if item["kind"] != "api"]
                return items if len(items) >= 4 else None

            items = (await until(recorded, timeout=10, interval=0.1))[:4]
            kinds = [item["kind"] for item in items]
            if items[1]["ts"] == items[2]["ts"]:
                # The publish lives on another partition's stream than the join: within
                # one millisecond, history orders them by entry id, not by the socket.
                kinds[1:3] = sorted(kinds[1:3], reverse=True)
            assert kinds == ["disconnect", "publish", "join", "connect"]  # newest first
            other = (await http.get("/v2/sync/activity", headers=bearer(token("someone")))).json()
            assert other["items"] == []
    finally:
        gw.terminate()
        activity.terminate()
