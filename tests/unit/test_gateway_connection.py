"""Connection on its own: commands run in order through the dispatch it is given,
the first-frame and bad-frame rules, floods, timeouts, event numbering, close."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from goldwire.gateway.auth import Principal
from goldwire.gateway.connection import Connection, ConnState
from goldwire.gateway.handlers import run_command
from goldwire.protocol.codes import CloseCode
from goldwire.protocol.commands import Connect, Ping
from goldwire.service.logs import log_fields
from tests.support import until
from tests.unit.gateway_parts import FakeTransport, UnitNode


class Recorder:
    """A dispatch that records what it was given, holding each command for a turn."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.running = 0
        self.most_at_once = 0

    async def __call__(self, node: Any, conn: Connection, command: Any) -> None:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        await asyncio.sleep(0)  # yield, so a second command could overlap if allowed
        self.seen.append(command)
        self.running -= 1


def connection(node: UnitNode | None = None, dispatch: Any = None,
               transport: FakeTransport | None = None) -> tuple[Connection, FakeTransport, Any]:
    node = node or UnitNode()
    transport = transport or FakeTransport()
    dispatch = dispatch or Recorder()
    return Connection(node, transport, dispatch, None), transport, dispatch  # type: ignore[arg-type]


async def test_commands_run_one_at_a_time_in_order_through_the_given_dispatch() -> None:
    conn, _, recorder = connection()
    conn.on_message(b'{"op":"connect","ref":1,"token":"t"}')
    conn.state = ConnState.READY
    for ref in range(2, 12):
        conn.on_message(b'{"op":"ping","ref":%d}' % ref)
    await until(lambda: len(recorder.seen) == 11, timeout=2)
    assert isinstance(recorder.seen[0], Connect)
    assert all(isinstance(c, Ping) for c in recorder.seen[1:])
    assert [c.ref for c in recorder.seen] == list(range(1, 12))
    assert recorder.most_at_once == 1


async def test_a_first_frame_that_is_not_connect_closes_4000() -> None:
    conn, transport, recorder = connection()
    conn.on_message(b'{"op":"ping","ref":1}')
    assert transport.closed is not None and transport.closed[0] == CloseCode.PROTOCOL_VIOLATION
    await asyncio.sleep(0)
    assert recorder.seen == []


async def test_a_bad_frame_before_connect_closes_and_after_it_gets_an_error() -> None:
    conn, transport, _ = connection()
    conn.on_message(b"{not json")
    assert transport.closed is not None and transport.closed[0] == CloseCode.PROTOCOL_VIOLATION

    conn, transport, _ = connection()
    conn.state = ConnState.READY
    conn.on_message(b'{"op":"nope","ref":7}')
    conn.on_message(b"[]", binary=True)
    assert transport.closed is None
    errors = transport.frames()
    assert [f["type"] for f in errors] == ["error", "error"]
    assert errors[0]["data"]["code"] == "bad_request" and errors[0]["ref"] == 7
    assert "binary" in errors[1]["data"]["message"]


async def test_a_flood_is_answered_rate_limited_then_closed_4008() -> None:
    node = UnitNode(rate_limit_per_second=1, rate_limit_burst=2, flood_strikes=5)
    conn, transport, _ = connection(node)
    conn.state = ConnState.READY
    for ref in range(1, 20):
        conn.on_message(b'{"op":"ping","ref":%d}' % ref)
    limited = [f for f in transport.frames() if f["type"] == "error"]
    assert limited and all(f["data"]["code"] == "rate_limited" for f in limited)
    assert limited[0]["ref"] == 3  # the first two fit in the burst
    assert transport.closed is not None and transport.closed[0] == CloseCode.RATE_LIMITED
    assert node.metrics.rate_limited >= 5


async def test_no_connect_within_the_auth_timeout_closes_4001() -> None:
    _, transport, _ = connection(UnitNode(auth_timeout=0.05))
    await until(lambda: transport.closed is not None, timeout=2)
    assert transport.closed == (CloseCode.UNAUTHORIZED, "auth timeout")


async def test_next_seq_numbers_the_connections_events_from_one() -> None:
    conn, _, _ = connection()
    assert [conn.next_seq() for _ in range(3)] == [1, 2, 3]
    assert conn.seq == 3


async def test_on_closed_detaches_once_and_stops_the_work() -> None:
    node = UnitNode()
    conn, _, _ = connection(node, dispatch=run_command)
    conn.on_message(b'{"op":"connect","ref":1,"token":"t"}')
    conn.on_closed()
    conn.on_closed()
    assert node.detached == [(conn, False)]
    assert conn.is_closed and not conn.is_ready
    conn.on_message(b'{"op":"ping","ref":2}')  # ignored once closed
    assert node.metrics.connections_closed == 1


async def test_its_commands_log_under_its_connection_id_and_then_its_user() -> None:
    """The log context is the connection's (goldwire.service.logs): set once, not per
    command, and it never leaks out into the code that fed it the frames."""
    seen: list[dict[str, str]] = []

    async def dispatch(node: Any, conn: Connection, command: Any) -> None:
        seen.append(dict(log_fields()))
        if isinstance(command, Connect):
            conn.authenticated(Principal("ada", None, "acme", ("*",), ("*",), time.time() + 60))

    conn, _, _ = connection(dispatch=dispatch)
    conn.on_message(b'{"op":"connect","ref":1,"token":"t"}')
    await until(lambda: len(seen) == 1, timeout=2)
    conn.on_message(b'{"op":"ping","ref":2}')
    await until(lambda: len(seen) == 2, timeout=2)
    assert seen == [{"conn": conn.id}, {"conn": conn.id, "user": "ada", "tenant": "acme"}]
    assert log_fields() == {}
    conn.on_closed()
