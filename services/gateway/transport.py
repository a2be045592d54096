"""The socket side of a connection: websockets' sans-I/O protocol driven by asyncio.

uvicorn serves HTTP and hands every upgrade request to this class (uvicorn's
`ws=` protocol-class setting), so `/ws` skips the ASGI layer: inbound frames go
straight to the `Connection`, and fan-out writes pre-built frame bytes straight
to the transport (docs/architecture.md has the measurements behind this).

A connection never blocks anyone: writes are non-blocking, and a socket whose
unsent bytes pass `max_outbound_bytes` is closed with 4009 (slow consumer).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, Any

from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from goldwire.gateway.connection import NO_CLOSE_FRAME, Connection, Dispatch
from goldwire.gateway.ratelimit import Verdict
from goldwire.protocol.codes import CloseCode

if TYPE_CHECKING:
    from goldwire.gateway.node import GatewayNode

log = logging.getLogger("goldwire.gateway")

CLOSE_TIMEOUT = 10.0  # seconds to wait for the peer to read up to our close frame and answer it


class WebSocketTransport(asyncio.Protocol):
    """One socket. uvicorn constructs it with `(config, server_state, app_state)`."""

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any], **_: Any) -> None:
        self.node: GatewayNode = app_state["node"]
        self.dispatch: Dispatch = app_state["dispatch"]  # handlers.run_command (app.py)
        self.server_connections: set[Any] = server_state.connections
        settings = self.node.settings
        extensions = []
        if settings.per_message_deflate:
            extensions = [ServerPerMessageDeflateFactory(server_max_window_bits=12)]
        origins: list[Any] | None = None
        if settings.origin_list():
            origins = [*settings.origin_list(), None]  # None: servers send no Origin
        self.ws = ServerProtocol(
            origins=origins, extensions=extensions, max_size=settings.max_frame_bytes
        )
        self.transport: asyncio.Transport | None = None
        self.max_outbound = settings.max_outbound_bytes  # read on every delivery
        self.conn: Connection | None = None
        self.plain = True  # no extension negotiated: pre-built frames may be written as is
        self.awaiting_pong = False
        self._fragments: list[bytes | bytearray | memoryview] = []
        self._binary = False
        self._abort_handle: asyncio.TimerHandle | None = None
        self._held: list[bytes] | None = None  # bytes that came while the upgrade waits
        self._lost = False
        self._rate_check: asyncio.Task[None] | None = None

    # --- asyncio.Protocol ------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server_connections.add(self)
        sndbuf = self.node.settings.socket_send_buffer
        sock = transport.get_extra_info("socket")
        if sndbuf and sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)

    def data_received(self, data: bytes) -> None:
        if self._held is not None:
            self._held.append(data)
            return
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame):
                self._on_frame(event)
            elif isinstance(event, Request):
                self._on_handshake(event)
        self._flush()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self.server_connections.discard(self)
        if self._abort_handle is not None:
            self._abort_handle.cancel()
        if self.conn is not None:
            self.conn.on_closed(self.close_code())

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: tell the client to reconnect elsewhere."""
        if self.conn is not None and self.ws.state is State.OPEN:
            self.close(CloseCode.DRAINING, "server draining")
        elif self.transport is not None and self.conn is None:
            self.transport.close()

    # --- sending -------------------------------------------------------------
    def deliver(self, wire: bytes, payload: bytes) -> None:
        """Write one message: `wire` is `payload` already framed (see framing.py)."""
        if self.ws.state is not State.OPEN:
            return
        transport = self.transport
        if self.plain:
            transport.write(wire)  # type: ignore[union-attr]
        else:
            self.ws.send_text(payload)
            self._flush()
        if transport.get_write_buffer_size() > self.max_outbound:  # type: ignore[union-attr]
            self.node.metrics.slow_consumers_dropped += 1
            self.abort_slow()

    def send(self, payload: bytes) -> None:
        """Write one frame to this socket only (replies, errors, replays)."""
        if self.ws.state is not State.OPEN:
            return
        self.ws.send_text(payload)
        self._flush()
        self.node.metrics.messages_out += 1
        if self.transport.get_write_buffer_size() > self.max_outbound:  # type: ignore[union-attr]
            self.node.metrics.slow_consumers_dropped += 1
            self.abort_slow()

    def ping(self) -> None:
        if self.ws.state is State.OPEN:
            self.ws.send_ping(b"gw")
            self.awaiting_pong = True
            self._flush()

    def close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake; abort if the peer does not finish it."""
        if self.ws.state is State.OPEN:
            self.ws.send_close(code, reason)
        self._flush()

    def abort_slow(self) -> None:
        """A slow consumer: queue the 4009 close behind its backlog, stop writing to it.

        The close frame waits behind what the client has not read yet; the
        abort timer cuts the socket if it never gets there.
        """
        self.close(CloseCode.SLOW_CONSUMER, "slow consumer")

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def is_open(self) -> bool:
        return self.ws.state is State.OPEN

    def close_code(self) -> int:
        """The code this socket ended with: the one we sent (the gateway decided, or
        echoed the peer's), else the peer's, else 1006 (aborted: no close frame)."""
        frame = self.ws.close_sent or self.ws.close_rcvd
        return frame.code if frame is not None else NO_CLOSE_FRAME

    def closed_cleanly(self) -> bool:
        """The peer sent a close frame: it read everything we sent before ours or its."""
        return self.ws.close_rcvd is not None

    # --- receiving ---------------------------------------------------------------
    def _on_handshake(self, request: Request) -> None:
        if not self.node.connect_limiter.enabled:
            self._answer(request, None)
            return
        # CONNECT_RATE_PER_IP asks Redis before answering: the upgrade is refused with a
        # real HTTP 429 (never a 101 then a close), so a refused attempt costs no socket
        # state, no Connection and no auth timer. Until then the socket only buffers.
        self._held = []
        self._rate_check = asyncio.get_running_loop().create_task(self._check_rate(request))

    async def _check_rate(self, request: Request) -> None:
        node = self.node
        peer = self.transport.get_extra_info("peername") if self.transport else None
        ip = node.client_address.resolve(str(peer[0]) if peer else "",
                                         request.headers.get_all("X-Forwarded-For"))
        verdict = None
        try:
            verdict = await node.connect_limiter.take(node.keys.connect_rate(ip))
        except Exception as exc:  # no Redis: let it through; its connect fails on its own
            log.warning("connect rate check failed: %s", exc)
        if self._lost:
            return
        held, self._held = self._held or [], None
        self._answer(request, verdict)
        self._flush()
        if self.conn is not None:
            for data in held:
                self.data_received(data)

    def _answer(self, request: Request, verdict: Verdict | None) -> None:
        response = self.ws.accept(request)
        path = request.path.partition("?")[0]
        if response.status_code == 101 and path != "/ws":
            response = self.ws.reject(404, "Not Found: WebSocket endpoint is /ws\n")
        if response.status_code == 101 and verdict is not None and not verdict.allowed:
            self.node.metrics.connects_rate_limited += 1
            response = self.ws.reject(429, "Too Many Requests: connection attempts from this "
                                      "address are over CONNECT_RATE_PER_IP; retry later\n")
            response.headers["Retry-After"] = str(verdict.retry_after)
        self.ws.send_response(response)
        if response.status_code != 101:
            self._flush()
            self.transport.close()  # type: ignore[union-attr]
            return
        self.plain = not self.ws.extensions
        self.conn = Connection(self.node, self, self.dispatch,
                               request.headers.get("Authorization"),
                               request.headers.get("User-Agent", ""))

    def _on_frame(self, frame: Frame) -> None:
        self.awaiting_pong = False  # any frame proves the peer is alive
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY or opcode is Opcode.CONT:
            if opcode is not Opcode.CONT:
                self._fragments = [frame.data]
                self._binary = opcode is Opcode.BINARY
            else:
                self._fragments.append(frame.data)
            if not frame.fin:
                return
            data = b"".join(self._fragments) if len(self._fragments) > 1 else self._fragments[0]
            self._fragments = []
            if self.conn is not None:
                self.conn.on_message(bytes(data), binary=self._binary)

    def _flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for chunk in self.ws.data_to_send():
            if chunk:
                transport.write(chunk)
            else:  # websockets' signal: the closing handshake is over, close TCP
                transport.close()
        if self.ws.close_expected() and self._abort_handle is None and not transport.is_closing():
            loop = asyncio.get_running_loop()
            self._abort_handle = loop.call_later(CLOSE_TIMEOUT, transport.abort)
