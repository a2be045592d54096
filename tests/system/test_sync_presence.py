"""`GET /v2/sync/presence?rooms=`: the gateway forwards a user's presence read.

Real processes: a presence service and a gateway pointed at it on one Redis.
The token decides everything: who (401 without a valid one), which rooms
(403 for a room it may not join, named in the body) and which tenant (its
own, never a parameter). When the presence service is gone or stuck, the
gateway answers 503 at once or within its timeout, never hangs. The
forwarder's mapping of every upstream answer is checked without processes,
on an `httpx.MockTransport`.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import pytest

from goldwire.gateway.settings import GatewaySettings
from goldwire.gateway.sync_api import Forwarder, SyncError
from tests.support import API_KEY, SECRET, Client, Gateway, Presence, token

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def stack(redis_server) -> Iterator[tuple[Presence, Gateway]]:
    prefix = "gwtest:" + uuid.uuid4().hex[:8]
    presence = Presence(redis_server.url, prefix, presence_leave_grace=0.2).start()
    # The gateway calls with the first of its API keys; the second is only accepted.
    gateway = Gateway(redis_server.url, prefix, presence_url=presence.http,
                      api_keys=f"{API_KEY},another-key").start()
    yield presence, gateway
    gateway.terminate()
    presence.terminate()


@pytest.fixture
async def http(stack: tuple[Presence, Gateway]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack[1].http, timeout=10) as client:
        yield client


def room() -> str:
    return "doc:" + uuid.uuid4().hex[:8]


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


async def member(gateway: Gateway, user: str, rooms: list[str], **claims: Any) -> Client:
    """A connection joined to `rooms`, returned once presence has stored its joins.

    The joiner's own `state` frame is written after its join is stored, so once
    it has arrived for every room the HTTP API lists the member.
    """
    client = await Client.open(gateway.url, token(user, name=user.title(), **claims),
                               rooms=[{"room": r} for r in rooms])
    waiting = set(rooms)
    while waiting:
        msg = await client.recv_type("presence_update")
        if msg["data"]["kind"] == "state":
            waiting.discard(msg["room"])
    return client


def ids(body: dict[str, Any], name: str) -> list[str]:
    return [m["user"]["id"] for m in body["rooms"][name]["members"]]


async def test_members_of_allowed_rooms(stack, http: httpx.AsyncClient) -> None:
    _, gateway = stack
    a, b = room(), room()
    ada = await member(gateway, "ada", [a, b])
    bob = await member(gateway, "bob", [a])
    try:
        resp = await http.get("/v2/sync/presence", params={"rooms": f"{a},{b}"},
                              headers=bearer(token("carol", rooms=("doc:*",))))
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert set(body["rooms"]) == {a, b}
        assert ids(body, a) == ["ada", "bob"]
        assert ids(body, b) == ["ada"]
        assert body["rooms"][b]["members"][0] == {
            "user": {"id": "ada", "name": "Ada"}, "status": "online", "connections": 1,
            "meta": {}}
        assert body["rooms"][a]["version"] >= 2

        # A room nobody is in is an empty list, not an error; duplicates count once.
        empty = room()
        resp = await http.get("/v2/sync/presence", params={"rooms": f"{empty},{a},{a}"},
                              headers=bearer(token("carol", rooms=("doc:*",))))
        assert resp.status_code == 200, resp.text
        assert list(resp.json()["rooms"]) == [empty, a]
        assert resp.json()["rooms"][empty] == {"members": [], "version": 0}
    finally:
        await ada.close()
        await bob.close()


async def test_forbidden_room_is_403_naming_it(stack, http: httpx.AsyncClient) -> None:
    allowed, secret = room(), "secret:" + uuid.uuid4().hex[:6]
    resp = await http.get("/v2/sync/presence", params={"rooms": f"{allowed},{secret}"},
                          headers=bearer(token("carol", rooms=("doc:*",))))
    assert resp.status_code == 403, resp.text
    detail = resp.json()["detail"]
    assert detail["code"] == "forbidden"
    assert detail["room"] == secret and secret in detail["message"]

    # No `rooms` claim means no room at all.
    resp = await http.get("/v2/sync/presence", params={"rooms": allowed},
                          headers=bearer(token("carol", rooms=())))
    assert resp.status_code == 403
    assert resp.json()["detail"]["room"] == allowed


@pytest.mark.parametrize("headers,why", [
    ({}, "missing token"),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing token"),
    ({"Authorization": "Bearer"}, "missing token"),
    ({"Authorization": "Bearer not-a-jwt"}, "malformed"),
    ({"Authorization": f"Bearer {API_KEY}"}, "malformed"),  # an API key is not a user
])
async def test_missing_or_malformed_token_is_401(stack, http: httpx.AsyncClient,
                                                  headers: dict[str, str], why: str) -> None:
    resp = await http.get("/v2/sync/presence", params={"rooms": room()}, headers=headers)
    assert resp.status_code == 401, resp.text
    assert resp.headers["www-authenticate"] == "Bearer"
    assert resp.json()["detail"]["code"] == "unauthorized"
    assert why in resp.json()["detail"]["message"]


async def test_expired_or_foreign_token_is_401(stack, http: httpx.AsyncClient) -> None:
    now = int(time.time())
    expired = jwt.encode({"sub": "carol", "rooms": ["*"], "exp": now - 3600, "iat": now - 7200},
                         SECRET, algorithm="HS256")
    forged = jwt.encode({"sub": "carol", "rooms": ["*"], "exp": now + 3600},
                        "some-other-secret-0123456789-0123456789", algorithm="HS256")
    for tok, why in ((expired, "expired"), (forged, "signature")):
        resp = await http.get("/v2/sync/presence", params={"rooms": room()},
                              headers=bearer(tok))
        assert resp.status_code == 401, resp.text
        assert why in resp.json()["detail"]["message"].lower()


async def test_a_tenant_sees_only_its_own_presence(stack, http: httpx.AsyncClient) -> None:
    _, gateway = stack
    shared = room()  # the same room name in two tenants: two different rooms
    ada = await member(gateway, "ada", [shared])  # tenant `default`
    zed = await member(gateway, "zed", [shared], tenant="acme")
    try:
        acme = bearer(token("yan", tenant="acme", rooms=("doc:*",)))
        resp = await http.get("/v2/sync/presence", params={"rooms": shared}, headers=acme)
        assert resp.status_code == 200, resp.text
        assert ids(resp.json(), shared) == ["zed"]

        # The tenant comes from the token; a `tenant` parameter changes nothing.
        resp = await http.get("/v2/sync/presence",
                              params={"rooms": shared, "tenant": "default"}, headers=acme)
        assert ids(resp.json(), shared) == ["zed"]

        resp = await http.get("/v2/sync/presence", params={"rooms": shared},
                              headers=bearer(token("carol", rooms=("doc:*",))))
        assert ids(resp.json(), shared) == ["ada"]
    finally:
        await ada.close()
        await zed.close()


@pytest.mark.parametrize("rooms,why", [
    ("", "at least one"),
    (",,", "at least one"),
    ("doc:{x}", "not a room name"),
    (",".join(f"doc:{i}" for i in range(101)), "at most 100"),
])
async def test_bad_room_lists_are_400(stack, http: httpx.AsyncClient, rooms: str,
                                      why: str) -> None:
    resp = await http.get("/v2/sync/presence", params={"rooms": rooms},
                          headers=bearer(token("carol")))
    assert resp.status_code == 400, resp.text
    assert resp.json()["detail"]["code"] == "bad_request"
    assert why in resp.json()["detail"]["message"]


async def test_presence_down_or_stuck_is_503_quickly(redis_server, key_prefix) -> None:
    presence = Presence(redis_server.url, key_prefix).start()
    gateway = Gateway(redis_server.url, key_prefix, presence_url=presence.http,
                      sync_timeout=1).start()
    assert presence.proc is not None
    params, headers = {"rooms": room()}, bearer(token("carol"))
    try:
        async with httpx.AsyncClient(base_url=gateway.http, timeout=10) as http:
            assert (await http.get("/v2/sync/presence", params=params,
                                   headers=headers)).status_code == 200

            # Stuck (SIGSTOP): the connection is accepted, nothing answers.
            os.kill(presence.proc.pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                resp = await http.get("/v2/sync/presence", params=params, headers=headers)
                elapsed = time.monotonic() - started
            finally:
                os.kill(presence.proc.pid, signal.SIGCONT)
            assert resp.status_code == 503, resp.text
            assert resp.json()["detail"] == {
                "code": "unavailable", "service": "presence",
                "message": "the presence service did not answer within 1 s; retry later"}
            assert elapsed < 3, elapsed  # the 1 s timeout, not httpx's 10 s

            # Gone (killed): refused at once.
            presence.kill()
            started = time.monotonic()
            resp = await http.get("/v2/sync/presence", params=params, headers=headers)
            assert resp.status_code == 503, resp.text
            assert resp.json()["detail"]["code"] == "unavailable"
            assert "presence service is unavailable" in resp.json()["detail"]["message"]
            assert time.monotonic() - started < 3

            # The gateway itself is fine: sockets still connect.
            client = await Client.open(gateway.url, token("carol"))
            assert client.connected["type"] == "system_message"
            await client.close()
    finally:
        gateway.terminate()
        presence.kill()


# --- the forwarder alone: what each upstream answer becomes ------------------------------
def forwarder(handler: Any, **settings: Any) -> Forwarder:
    values = {"api_keys": "first-key, second-key", "presence_url": "http://presence.test/",
              "sync_timeout": 0.5, **settings}
    return Forwarder(GatewaySettings(**values), transport=httpx.MockTransport(handler))


async def test_forwarder_calls_with_the_first_api_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"rooms": {}})

    fwd = forwarder(handler)
    try:
        body = await fwd.get("presence", "/v1/presence/rooms", {"rooms": "a,b", "tenant": "t1"})
    finally:
        await fwd.aclose()
    assert body == {"rooms": {}}
    (request,) = seen
    assert request.headers["authorization"] == "Bearer first-key"
    assert str(request.url) == "http://presence.test/v1/presence/rooms?rooms=a%2Cb&tenant=t1"


@pytest.mark.parametrize("answer,status,code", [
    (httpx.Response(500, text="boom"), 503, "unavailable"),
    (httpx.Response(503, json={"ready": False}), 503, "unavailable"),
    (httpx.Response(401, json={"detail": "missing or unknown API key"}), 502, "internal"),
    (httpx.Response(200, text="<html>"), 502, "internal"),
    (httpx.Response(422, json={"detail": "not a room name: 'x'"}), 422, "bad_request"),
    (httpx.ConnectError("refused"), 503, "unavailable"),
    (httpx.ReadTimeout("slow"), 503, "unavailable"),
])
async def test_forwarder_maps_upstream_answers(answer: Any, status: int, code: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return answer

    fwd = forwarder(handler)
    try:
        with pytest.raises(SyncError) as caught:
            await fwd.get("presence", "/v1/presence/rooms", {"rooms": "a"})
    finally:
        await fwd.aclose()
    assert caught.value.status_code == status
    assert caught.value.detail["code"] == code


async def test_forwarder_without_api_key_is_503() -> None:
    fwd = forwarder(lambda request: httpx.Response(200, json={}), api_keys="")
    try:
        with pytest.raises(SyncError) as caught:
            await fwd.get("presence", "/v1/presence/rooms", {"rooms": "a"})
    finally:
        await fwd.aclose()
    assert caught.value.status_code == 503
    assert "API_KEYS" in caught.value.detail["message"]
