"""A deadline on reading each HTTP request, for every Goldwire process (slowloris).

uvicorn closes idle keep-alive connections, but a connection that never sends a request,
or sends its head or body a byte at a time, is held for as long as the client likes: 300
such connections stayed open past 40 s, each costing a socket and a descriptor. This is
uvicorn's own httptools protocol with one timer: armed when a connection opens and when
each request begins, disarmed when the request has fully arrived (or became a WebSocket,
whose handshake is part of that request), and when it fires the connection gets a 408 and
is closed. Responses are not limited: a slow client reading a big answer is the outbound
buffer's business.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\n"
                    b"content-length: 28\r\nconnection: close\r\n\r\nrequest not received in time")


def deadline_protocol(timeout: float, on_timeout: Any = None) -> type[asyncio.Protocol]:
    """uvicorn's `http=` protocol class with a `timeout`-second request deadline.

    `on_timeout(app_state)` is called each time the deadline closes a connection (the
    lifespan state: where a process keeps its metrics)."""

    class DeadlineHttpProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def handle_websocket_upgrade(self) -> None:
            self._disarm()  # the socket now belongs to the WebSocket protocol and its timers
            super().handle_websocket_upgrade()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(timeout, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            if self.cycle is None or not self.cycle.response_started:
                self.transport.write(TIMEOUT_RESPONSE)
            self.transport.close()
            if on_timeout is not None:
                on_timeout(self.app_state)

    return DeadlineHttpProtocol
