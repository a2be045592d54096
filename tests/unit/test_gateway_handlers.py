"""Handlers that need no Redis, run through `run_command` as a socket would:
the reply or error each command gets, the close codes, the events they queue."""

from __future__ import annotations

import json
import time
from typing import Any

from goldwire.cli.tokens import mint_token
from goldwire.gateway.connection import Connection
from goldwire.gateway.handlers import HANDLERS, MAX_STATUS_META_BYTES, run_command
from goldwire.protocol import commands
from goldwire.protocol.codes import CloseCode
from goldwire.protocol.commands import parse_command
from tests.unit.gateway_parts import SECRET, FakeTransport, UnitNode


def ready(node: UnitNode, user: str = "alice", **claims: Any) -> tuple[Connection, FakeTransport]:
    """A connection that has passed `connect` with a token for `user`."""
    transport = FakeTransport()
    conn = Connection(node, transport, run_command, None)  # type: ignore[arg-type]
    conn.authenticated(node.verifier.verify(mint_token(SECRET, user, **claims)))
    return conn, transport


async def run(node: UnitNode, conn: Connection, frame: str | dict[str, Any]) -> None:
    text = frame if isinstance(frame, str) else json.dumps(frame)
    await run_command(node, conn, parse_command(text))  # type: ignore[arg-type]


def test_every_command_of_the_protocol_has_a_handler() -> None:
    command_types = {c for c in vars(commands).values()
                     if isinstance(c, type) and issubclass(c, commands._Command)
                     and c is not commands._Command}
    assert command_types == set(HANDLERS)


async def test_ping_is_answered_with_its_ref() -> None:
    node = UnitNode()
    conn, transport = ready(node)
    await run(node, conn, '{"op":"ping","ref":"p1"}')
    assert transport.frames() == [{"type": "system_message", "ref": "p1", "data": {"pong": True}}]


async def test_status_queues_a_numbered_event_and_refuses_oversized_meta() -> None:
    node = UnitNode()
    conn, transport = ready(node)
    await run(node, conn, '{"op":"status","ref":1,"status":"away","meta":{"doc":"d1"}}')
    big = "x" * MAX_STATUS_META_BYTES
    await run(node, conn, {"op": "status", "ref": 2, "status": "busy", "meta": {"n": big}})
    replies = transport.frames()
    assert replies[0]["data"] == {"status": "away"}
    assert replies[1]["type"] == "error" and replies[1]["data"]["code"] == "too_large"
    assert replies[1]["ref"] == 2
    assert node.outbox.events == [{"kind": "status", "conn": conn.id, "seq": 1,
                                   "status": "away", "meta": {"doc": "d1"}}]
    assert conn.status == "away"


async def test_leave_of_a_room_not_joined_is_not_found() -> None:
    node = UnitNode()
    conn, transport = ready(node)
    await run(node, conn, '{"op":"leave","ref":3,"room":"doc:1"}')
    [reply] = transport.frames()
    assert reply["data"]["code"] == "not_found" and reply["ref"] == 3
    assert node.outbox.events == []


async def test_send_outside_the_tokens_send_claim_is_forbidden() -> None:
    node = UnitNode()
    conn, transport = ready(node, send=["team-*"])
    await run(node, conn, '{"op":"send","ref":4,"user":"bob","data":{}}')
    [reply] = transport.frames()
    assert reply["data"]["code"] == "forbidden"
    assert transport.closed is None


async def test_connect_with_a_bad_token_closes_4001() -> None:
    node = UnitNode()
    transport = FakeTransport()
    conn = Connection(node, transport, run_command, None)  # type: ignore[arg-type]
    await run(node, conn, '{"op":"connect","ref":1,"token":"not-a-jwt"}')
    assert transport.closed is not None and transport.closed[0] == CloseCode.UNAUTHORIZED
    assert conn.principal is None


async def test_connect_twice_is_a_bad_request() -> None:
    node = UnitNode()
    conn, transport = ready(node)
    token = mint_token(SECRET, "alice")
    await run(node, conn, {"op": "connect", "ref": 9, "token": token})
    [reply] = transport.frames()
    assert reply["data"]["code"] == "bad_request" and reply["ref"] == 9


async def test_refresh_keeps_the_connection_and_another_users_token_closes_it() -> None:
    node = UnitNode()
    conn, transport = ready(node, ttl=60)
    fresh = mint_token(SECRET, "alice", ttl=3600)
    await run(node, conn, {"op": "refresh", "ref": 1, "token": fresh})
    await run(node, conn, '{"op":"refresh","ref":2,"token":"garbage"}')
    assert transport.closed is None
    first, second = transport.frames()
    assert first["data"]["expires_at"] > (time.time() + 3000) * 1000
    assert second["data"]["code"] == "unauthorized"
    assert node.metrics.tokens_refreshed == 1

    other = mint_token(SECRET, "mallory")
    await run(node, conn, {"op": "refresh", "ref": 3, "token": other})
    assert transport.frames()[-1]["data"]["code"] == "forbidden"
    assert transport.closed is not None and transport.closed[0] == CloseCode.UNAUTHORIZED
    assert conn.principal is not None and conn.principal.user_id == "alice"
