"""What the gateway needs from one client socket, as a Protocol.

`WebSocketTransport` (transport.py) is the implementation; `Connection`, the
groups and the rooms only use what is named here, so tests/unit can drive
them with a fake socket and no event loop I/O.
"""

from __future__ import annotations

from typing import Protocol


class Transport(Protocol):
    """One client socket: non-blocking writes, a close handshake, liveness."""

    awaiting_pong: bool  # a ping went out and no frame has come back since

    def deliver(self, wire: bytes, payload: bytes) -> None:
        """Write a fan-out message: `wire` is `payload` already framed (framing.py)."""

    def send(self, payload: bytes) -> None:
        """Write one frame to this socket only (replies, errors, replays)."""

    def ping(self) -> None:
        """Send a WebSocket ping; any frame back clears `awaiting_pong`."""

    def close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake with a close code."""

    def abort(self) -> None:
        """Drop the TCP connection at once (no handshake)."""

    def is_open(self) -> bool:
        """The WebSocket is open: frames written now can reach the peer."""

    def closed_cleanly(self) -> bool:
        """The peer sent a close frame: it read everything sent before it."""
