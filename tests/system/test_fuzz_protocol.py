"""Hypothesis against the wire protocol: the parser, a real gateway socket, the publish API.

(a) `parse_command` on any text, bytes or JSON value returns a typed command or raises a
    ProtocolError, never anything else; (b) hostile frames on a real socket get an `error`
    with a known code (or a documented close), and the socket, and a client beside it,
    keep working; (c) generated publish bodies never give a 5xx, and a 2xx only when valid.
Derandomized, so CI sees the same cases; GOLDWIRE_FUZZ_EXAMPLES scales them.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from goldwire.protocol.codes import CloseCode, ErrorCode
from goldwire.protocol.commands import OPS, parse_command
from goldwire.protocol.errors import ProtocolError
from goldwire.protocol.http import BatchRequest, PublishRequest
from tests.support import API_KEY, Client, Gateway, token

SCALE = int(os.environ.get("GOLDWIRE_FUZZ_EXAMPLES", "12")) / 12
FAST = settings(max_examples=int(400 * SCALE), deadline=None, derandomize=True,
                database=None, suppress_health_check=list(HealthCheck))

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63)
           | st.floats(allow_nan=False) | st.text()
           | st.text(alphabet=st.characters(codec=None, categories=["Cs"])))
json_values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                           max_leaves=20)
odd = json_values | st.just("") | st.just("x" * 300) | st.just("99999999999999999999-0")
FIELDS = ["ref", "room", "since", "type", "data", "user", "status", "meta", "token",
          "session_id", "rooms", "state", "values", "version"]
near_commands = st.builds(
    lambda op, fields: {"op": op, **fields},
    st.sampled_from(sorted(OPS)),
    st.dictionaries(st.sampled_from(FIELDS), odd, max_size=5),
)


def deep(n: int) -> str:
    return "[" * n + "]" * n


def assert_parses_or_refuses(frame: str | bytes) -> None:
    try:
        parse_command(frame)
    except ProtocolError:
        pass


@FAST
@given(st.text() | st.binary())
def test_parse_any_text_or_bytes(frame: str | bytes) -> None:
    assert_parses_or_refuses(frame)


@FAST
@given(json_values | near_commands)
def test_parse_any_json_value(value: Any) -> None:
    try:
        text = json.dumps(value)
    except (ValueError, UnicodeEncodeError):
        return
    assert_parses_or_refuses(text)
    assert_parses_or_refuses(text.encode("utf-8", "surrogatepass"))


def test_parse_deep_nesting_and_huge_numbers() -> None:
    for frame in (deep(100_000), '{"op":"ping","ref":' + "9" * 5000 + "}",
                  '{"op":"publish","room":"r","type":"user_message","data":' + deep(40) + "}",
                  '{"op":"ping","ref":"\\ud800"}', b"\xff\xfe", "\x00"):
        assert_parses_or_refuses(frame)


# --- a real gateway ------------------------------------------------------------------
@pytest.fixture(scope="module")
def gateway(redis_server: Any) -> Iterator[Gateway]:
    gw = Gateway(redis_server.url, "gwfuzz:" + os.urandom(4).hex()).start()
    try:
        yield gw
    finally:
        gw.terminate()


def hostile_frames(n: int) -> list[str]:
    found: list[str] = []

    @settings(max_examples=n, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.text(max_size=200) | json_values.map(json.dumps) | near_commands.map(json.dumps))
    def collect(frame: str) -> None:
        try:
            frame.encode()
            parse_command(frame)
        except ProtocolError:
            found.append(frame)  # only frames the gateway must refuse
        except UnicodeEncodeError:
            pass
        else:
            pass

    collect()
    return found


KNOWN_CODES = {c.value for c in ErrorCode}
CLOSES = {int(c) for c in CloseCode}


async def test_hostile_frames_on_a_real_socket(gateway: Gateway) -> None:
    tok = token("fuzzer")
    watcher = await Client.open(gateway.url, token("watcher"))
    await watcher.ok("join", room="fuzz")
    client = await Client.open(gateway.url, tok)
    frames = hostile_frames(int(300 * SCALE))
    assert len(frames) > 50
    for frame in frames:
        try:
            await client.ws.send(frame)
            reply = json.loads(await asyncio.wait_for(client.ws.recv(), 5))
            assert reply["type"] == "error", (frame, reply)
            assert reply["data"]["code"] in KNOWN_CODES, (frame, reply)
        except websockets.ConnectionClosed:
            assert client.ws.close_code in CLOSES, (frame, client.ws.close_code)
            client = await Client.open(gateway.url, tok)
    assert (await client.command("ping"))["type"] != "error"
    async with gateway.api() as api:
        resp = await api.post("/v1/publish", json={"room": "fuzz", "type": "user_message",
                                                   "data": {"n": 1}})
        assert resp.status_code == 200, resp.text
    msg = await watcher.recv_type("user_message")
    assert msg["data"] == {"n": 1}
    await client.close()
    await watcher.close()


# --- the publish API -----------------------------------------------------------------
publish_bodies = st.fixed_dictionaries(
    {"type": st.sampled_from(["user_message", "document_update"])},
    optional={"room": odd | st.just("fuzz"), "user": odd, "tenant": odd,
              "data": json_values | st.just({"a": 1}), "idempotency_key": odd},
)


def valid(model: Any, body: Any) -> bool:
    try:
        model.model_validate(body)
    except Exception:
        return False
    return True


def test_publish_bodies(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.http, timeout=10,
                      headers={"Authorization": f"Bearer {API_KEY}"}) as http:

        @settings(max_examples=int(150 * SCALE), deadline=None, derandomize=True,
                  database=None, suppress_health_check=list(HealthCheck))
        @given(body=json_values | publish_bodies, batch=st.booleans())
        def check(body: Any, batch: bool) -> None:
            path = "/v1/publish/batch" if batch else "/v1/publish"
            sent = [body] if batch and isinstance(body, dict) else body
            try:
                content = json.dumps(sent).encode("utf-8", "surrogatepass")
            except (ValueError, UnicodeEncodeError):
                return
            resp = http.post(path, content=content,
                             headers={"Content-Type": "application/json"})
            assert resp.status_code < 500, (path, sent, resp.text)
            if 200 <= resp.status_code < 300:
                ok = (all(valid(PublishRequest, b) for b in sent) if isinstance(sent, list)
                      else valid(PublishRequest, sent))
                ok = ok or (batch and valid(BatchRequest, sent))
                assert ok, (path, sent, resp.text)

        check()
