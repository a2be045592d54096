"""One client's session on this gateway: its state, its limits, its command queue.

Frames are rate-limited and parsed as they arrive; commands then run one at
a time, in order, on a task that exists only while there is work (an idle
connection costs no task). Before `connect`, anything but a `connect` closes
the socket with 4000; after it, a bad frame gets a `bad_request` error and the
connection stays open. A connection lives no longer than its token: when the token
(plus `JWT_LEEWAY`) expires without a `refresh`, the socket is closed with 4001.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import TYPE_CHECKING, Any

from goldwire.gateway.auth import AuthError, Principal
from goldwire.gateway.limits import TokenBucket
from goldwire.protocol.codes import CloseCode, ErrorCode
from goldwire.protocol.commands import Connect, parse_command
from goldwire.protocol.errors import BadFrame
from goldwire.protocol.messages import error
from goldwire.service.logs import use_log_fields

if TYPE_CHECKING:
    from goldwire.gateway.interfaces import Transport
    from goldwire.gateway.node import GatewayNode
    from goldwire.gateway.rooms import LocalRoom

log = logging.getLogger("goldwire.gateway.connection")

NO_CLOSE_FRAME = 1006  # RFC 6455: the code reported, never sent, when no close frame came


class ConnState(Enum):
    AWAITING_CONNECT = "awaiting_connect"
    READY = "ready"
    CLOSED = "closed"


class CommandError(Exception):
    """A command that fails with an `error` reply; the connection stays open."""

    def __init__(self, code: ErrorCode, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra  # more fields for the error's `data` (e.g. current values)


# Runs one parsed command for a connection (`handlers.run_command`). It is handed in,
# not imported: the handlers import this module, and a lazy import back was a cycle.
Dispatch = Callable[["GatewayNode", "Connection", Any], Awaitable[None]]


class Connection:
    __slots__ = (
        "_auth_timer", "_dispatch", "_expiry_timer", "_flood_count", "_flood_window", "_inbox",
        "_worker", "bucket", "connected_at", "counted", "device", "header_auth", "id", "meta",
        "node", "principal", "rooms", "seq", "session_id", "state", "status", "transport",
    )

    def __init__(self, node: GatewayNode, transport: Transport, dispatch: Dispatch,
                 authorization: str | None, device: str = "") -> None:
        self.node = node
        self.transport = transport
        self._dispatch = dispatch
        self.id = node.new_connection_id()
        self.state = ConnState.AWAITING_CONNECT
        self.principal: Principal | None = None
        self.header_auth = authorization  # `Authorization: Bearer` of the upgrade request
        self.device = device  # the upgrade request's User-Agent, shown in session lists
        self.rooms: dict[str, LocalRoom] = {}
        self.session_id: str | None = None
        self.status = "online"
        self.meta: dict[str, Any] | None = None
        self.seq = 0  # the last event sequence number given out (next_seq)
        self.counted = False  # holds one of the user's slots (MAX_CONNECTIONS_PER_USER)
        self.connected_at = 0  # ms since the epoch when it was attached (authenticated)
        settings = node.settings
        loop = asyncio.get_running_loop()
        self.bucket = TokenBucket(settings.rate_limit_per_second, settings.rate_limit_burst,
                                  loop.time())
        self._flood_window = 0.0
        self._flood_count = 0
        self._inbox: deque[Any] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._auth_timer: asyncio.TimerHandle | None = loop.call_later(
            settings.auth_timeout, self._auth_timed_out)
        self._expiry_timer: asyncio.TimerHandle | None = None
        node.metrics.connections_opened += 1

    # --- inbound -------------------------------------------------------------------
    def on_message(self, data: bytes, binary: bool = False) -> None:
        node = self.node
        node.metrics.messages_in += 1
        if self.state is ConnState.CLOSED:
            return
        now = self.now()
        if not self.bucket.allow(now):
            self._rate_limited(now, data)
            return
        try:
            if binary:
                raise BadFrame("binary frames are not part of the protocol; send JSON text")
            command = parse_command(data)
            node.metrics.command(command.op)
        except BadFrame as exc:
            node.metrics.bad_frames += 1
            if self.state is ConnState.AWAITING_CONNECT:
                self.close(CloseCode.PROTOCOL_VIOLATION, _reason(exc.message))
            else:
                self.send(error(exc.code, exc.message, exc.ref))
            return
        if self.state is ConnState.AWAITING_CONNECT and not isinstance(command, Connect):
            self.close(CloseCode.PROTOCOL_VIOLATION, "the first frame must be connect")
            return
        if self._inbox is None:
            self._inbox = deque()
        self._inbox.append(command)
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())

    def _rate_limited(self, now: float, data: bytes) -> None:
        metrics = self.node.metrics
        metrics.rate_limited += 1
        if now - self._flood_window > 1.0:
            self._flood_window, self._flood_count = now, 0
        self._flood_count += 1
        if self._flood_count >= self.node.settings.flood_strikes:
            self.close(CloseCode.RATE_LIMITED, "flood")
        else:
            self.send(error(ErrorCode.RATE_LIMITED, "too many messages; slow down", _ref_of(data)))

    def _log_fields(self) -> dict[str, str]:
        """What this connection's log lines carry (goldwire.service.logs)."""
        if self.principal is None:
            return {"conn": self.id}
        return {"conn": self.id, "user": self.principal.user_id,
                "tenant": self.principal.tenant}

    async def _work(self) -> None:
        # Set in the worker task's own context, once per burst of commands: an idle
        # connection keeps no context of its own (measured 0.36 KB a socket); its token
        # timer still holds the context it was made in (~0.25 KB: 10.7 -> 11.0 KB).
        use_log_fields(self._log_fields())
        seconds = self.node.metrics.command_seconds  # op -> its latency histogram
        try:
            while self._inbox and self.state is not ConnState.CLOSED:
                command = self._inbox.popleft()
                start = time.perf_counter()
                await self._dispatch(self.node, self, command)
                seconds[command.op].observe(time.perf_counter() - start)
        finally:
            self._worker = None

    def next_seq(self) -> int:
        """The next number of this connection's events, so consumers can order them."""
        self.seq += 1
        return self.seq

    # --- lifecycle ---------------------------------------------------------------------
    def authenticated(self, principal: Principal) -> None:
        """The connect's (or a refresh's) token checked out: it rules until it expires."""
        self.principal = principal
        self.state = ConnState.READY
        use_log_fields(self._log_fields())  # in the worker handling the connect
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
        left = principal.expires_at + self.node.settings.jwt_leeway - time.time()
        self._expiry_timer = asyncio.get_running_loop().call_later(
            max(0.0, left), self._token_expired)

    def _token_expired(self) -> None:
        self._expiry_timer = None
        if self.state is ConnState.READY:
            self.node.metrics.tokens_expired += 1
            self.close(CloseCode.UNAUTHORIZED, "token expired")

    def _auth_timed_out(self) -> None:
        self._auth_timer = None
        if self.state is ConnState.AWAITING_CONNECT:
            self.close(CloseCode.UNAUTHORIZED, "auth timeout")

    def on_closed(self, code: int = NO_CLOSE_FRAME) -> None:
        """The socket is gone: leave everything, report the disconnect. `code` is the
        close code it ended with (the transport's `close_code`), for the metrics."""
        if self.state is ConnState.CLOSED:
            return
        was_ready = self.state is ConnState.READY
        self.state = ConnState.CLOSED
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
        if self._worker is not None:
            self._worker.cancel()
        self.node.metrics.closed(code)
        self.node.detach(self, was_ready)

    # --- outbound ------------------------------------------------------------------------
    def send(self, payload: bytes) -> None:
        self.transport.send(payload)

    def close(self, code: int, reason: str = "") -> None:
        self.transport.close(code, reason)

    def fail_auth(self, exc: AuthError) -> None:
        self.close(CloseCode.UNAUTHORIZED, _reason(str(exc)))

    @property
    def is_ready(self) -> bool:
        return self.state is ConnState.READY and self.transport.is_open()

    @property
    def is_closed(self) -> bool:
        return self.state is ConnState.CLOSED

    @staticmethod
    def now() -> float:
        return asyncio.get_running_loop().time()


def _ref_of(data: bytes) -> str | int | None:
    """The `ref` of a frame refused before parsing, so its error still answers it."""
    try:
        ref = json.loads(data).get("ref")
    except (ValueError, AttributeError, RecursionError):
        return None
    return ref if isinstance(ref, (str, int)) and not isinstance(ref, bool) else None


def _reason(text: str) -> str:
    """Close reasons must fit in a control frame (123 bytes)."""
    data = text.encode()[:120]
    return data.decode(errors="ignore")
