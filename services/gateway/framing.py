"""WebSocket frame bytes built once per message and written to many sockets.

A server frame is never masked, so a text frame is a fixed header plus the
payload: the same bytes serve every socket that negotiated no extension.
"""

from __future__ import annotations

import struct

_TEXT_FIN = 0x81


def text_frame(payload: bytes) -> bytes:
    """One complete, unmasked, unfragmented text frame carrying `payload`."""
    n = len(payload)
    if n < 126:
        return bytes((_TEXT_FIN, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", _TEXT_FIN, 126, n) + payload
    return struct.pack("!BBQ", _TEXT_FIN, 127, n) + payload
