"""Limits that protect everyone else from one bad input: nesting depth, message size, body
size. Real gateway processes, real sockets, real HTTP."""

from __future__ import annotations

import json

import httpx
import pytest

from goldwire.gateway.settings import GatewaySettings
from tests.support import API_KEY, Client, Gateway, token

pytestmark = pytest.mark.asyncio

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def gateway(redis_server, key_prefix):
    gw = Gateway(redis_server.url, key_prefix, max_publish_bytes=8192,
                 max_body_bytes=65536).start()
    yield gw
    gw.terminate()


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


async def test_deep_nesting_in_a_frame_is_a_bad_request_not_a_dropped_socket(gateway) -> None:
    client = await Client.open(gateway.url, token(), rooms=[{"room": "doc:n"}])
    for depth in (33, 1000, 30000):  # past the limit; past pydantic's; past Python's recursion
        frame = '{"op":"publish","room":"doc:n","type":"user_message","data":{"x":' \
                + nested(depth) + "}}"
        assert len(frame) < 65536
        await client.ws.send(frame)
        answer = await client.recv_type("error")
        assert answer["data"]["code"] == "bad_request"
        assert "nested deeper than 32" in answer["data"]["message"]
    fine = await client.ok("publish", room="doc:n", type="user_message",
                           data={"x": json.loads(nested(20))})
    assert fine["offset"]
    await client.close()


async def test_a_message_over_max_publish_bytes_is_refused_on_the_socket(gateway) -> None:
    watcher = await Client.open(gateway.url, token("w"), rooms=[{"room": "doc:big"}])
    client = await Client.open(gateway.url, token(), rooms=[{"room": "doc:big"}])
    answer = await client.command("publish", room="doc:big", type="user_message",
                                  data={"text": "x" * 9000})
    assert answer["type"] == "error" and answer["data"]["code"] == "too_large"
    assert "MAX_PUBLISH_BYTES" in answer["data"]["message"]
    ok = await client.ok("publish", room="doc:big", type="user_message", data={"text": "small"})
    got = await watcher.recv_type("user_message")
    assert got["offset"] == ok["offset"], "the refused message was never stored or delivered"
    await client.close()
    await watcher.close()


async def test_http_publishes_over_the_limit_answer_413_and_nothing_is_delivered(gateway) -> None:
    watcher = await Client.open(gateway.url, token("w"), rooms=[{"room": "doc:h"}])
    big = {"text": "x" * 9000}
    async with httpx.AsyncClient(base_url=gateway.http, headers=AUTH) as http:
        for body in ({"room": "doc:h", "data": big}, {"user": "w", "data": big},
                     {"user": "w", "type": "notification", "data": big},
                     {"broadcast": True, "data": big}):
            res = await http.post("/v1/publish", json=body)
            assert res.status_code == 413, (body.keys(), res.text)
            assert res.json()["detail"]["code"] == "too_large"
        batch = await http.post("/v1/publish/batch", json=[
            {"room": "doc:h", "data": {"n": 1}}, {"room": "doc:h", "data": big}])
        assert batch.status_code == 413, "a batch is refused whole, before any item is published"
        deep = await http.post("/v1/publish", json={"room": "doc:h", "data": {
            "x": json.loads(nested(40))}})
        assert deep.status_code == 422 and "nested deeper" in deep.text
        ok = await http.post("/v1/publish", json={"room": "doc:h", "data": {"n": 2}})
        assert ok.status_code == 200
    got = await watcher.recv_type("system_message")
    assert got["offset"] == ok.json()["offset"] and got["data"] == {"n": 2}
    await watcher.close()


async def test_http_bodies_over_max_body_bytes_answer_413(gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http, headers=AUTH) as http:
        huge = b'{"room": "doc:b", "data": {"t": "' + b"x" * 70000 + b'"}}'
        res = await http.post("/v1/publish", content=huge,
                              headers={"content-type": "application/json"})
        assert res.status_code == 413

        async def chunks():  # no Content-Length: the cap holds on the bytes received
            for _ in range(20):
                yield b"x" * 8192

        chunked = await http.post("/v1/publish", content=chunks(),
                                  headers={"content-type": "application/json"})
        assert chunked.status_code == 413
        assert (await http.get("/healthz")).status_code == 200


@pytest.mark.filterwarnings("ignore::pytest.PytestWarning")
def test_max_publish_bytes_must_leave_room_in_the_outbound_buffer() -> None:
    with pytest.raises(ValueError, match="MAX_PUBLISH_BYTES"):
        GatewaySettings(max_publish_bytes=1 << 20, max_outbound_bytes=1 << 20)
    assert GatewaySettings().max_publish_bytes * 2 <= GatewaySettings().max_outbound_bytes
