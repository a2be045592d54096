"""Gateway parts without processes or sockets: a fake socket and a small node.

Why a fake transport here: these tests are about what `Connection`, the
handlers and the groups do with frames (order, replies, close codes, a write
that raises), not about WebSocket framing; transport.py is exercised over
real sockets by tests/system. `FakeTransport` follows the `Transport`
Protocol (interfaces.py), which `test_fake_matches_the_protocol` checks.
`UnitNode` carries the real settings, metrics, token verifier and
authorizer of a node; only its Redis-backed parts are left out (`outbox`
records the events a handler queues instead of writing them to a stream).
"""

from __future__ import annotations

import json
from typing import Any

from goldwire.gateway.auth import TokenVerifier
from goldwire.gateway.authz import RoomAuthorizer
from goldwire.gateway.conn_index import ConnectionIndex
from goldwire.gateway.metrics import GatewayMetrics
from goldwire.gateway.settings import GatewaySettings
from goldwire.protocol.keys import Keys

SECRET = "unit-test-secret-0123456789-0123456789-abcdef"


class FakeTransport:
    """Records every frame written and the close; `fail` makes each write raise."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[bytes] = []
        self.delivered: list[bytes] = []
        self.closed: tuple[int, str] | None = None
        self.aborted = False
        self.awaiting_pong = False
        self.fail = fail

    def deliver(self, wire: bytes, payload: bytes) -> None:
        if self.fail:
            raise OSError("broken socket")
        self.delivered.append(payload)

    def send(self, payload: bytes) -> None:
        if self.fail:
            raise OSError("broken socket")
        self.sent.append(payload)

    def ping(self) -> None:
        self.awaiting_pong = True

    def close(self, code: int, reason: str = "") -> None:
        if self.closed is None:
            self.closed = (code, reason)

    def abort(self) -> None:
        self.aborted = True

    def is_open(self) -> bool:
        return self.closed is None and not self.aborted

    def closed_cleanly(self) -> bool:
        return False

    def frames(self) -> list[dict[str, Any]]:
        """Every frame sent to this socket only, decoded."""
        return [json.loads(f) for f in self.sent]


class RecordingOutbox:
    """Stands in for outbox.Outbox: keeps the events, numbering them as the real one does."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def event(self, kind: str, conn: Any = None, **fields: Any) -> None:
        entry = {"kind": kind, **{k: v for k, v in fields.items() if v is not None}}
        if conn is not None:
            entry["conn"] = conn.id
            entry["seq"] = conn.next_seq()
        self.events.append(entry)

    def command(self, *args: Any) -> None:
        self.events.append({"command": args})


class UnitNode:
    """What Connection and the Redis-free handlers read off a GatewayNode."""

    def __init__(self, **settings: Any) -> None:
        self.settings = GatewaySettings(jwt_secret=SECRET, node_id="gw-unit", **settings)
        self.node_id = self.settings.node_id
        self.metrics = GatewayMetrics()
        self.verifier = TokenVerifier(self.settings)
        self.authorizer = RoomAuthorizer(self.settings)
        self.outbox = RecordingOutbox()
        self.index_writes: list[tuple[Any, ...]] = []  # the connection index's commands
        self.index = ConnectionIndex(Keys("unit"), self.node_id, 60_000,
                                     lambda *args: self.index_writes.append(args))
        self.detached: list[tuple[Any, bool]] = []
        self._counter = 0

    def new_connection_id(self) -> str:
        self._counter += 1
        return f"{self.node_id}.{self._counter}"

    def detach(self, conn: Any, was_ready: bool) -> None:
        self.detached.append((conn, was_ready))
