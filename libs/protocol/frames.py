"""Byte layouts of the frames Redis stores and publishes, built without re-encoding.

A room message is stored as its head and tail; the frame is
`head + offset + '","ts":' + ms + tail`, so the bytes replayed from history are
the bytes that went out live (goldwire.store's room_publish.lua splices the same
way). A presence `state` joins the member JSON the presence service stored, as
is. Pure data, no I/O.
"""

from __future__ import annotations

import json
from typing import Any

from goldwire.protocol.messages import encode


def room_frame_parts(
    type_: str, room: str, data: dict[str, Any], sender: dict[str, Any] | None = None
) -> tuple[bytes, bytes]:
    """The head and tail room_publish.lua stores and splices around the offset and ts."""
    head = b'{"type":"' + type_.encode() + b'","room":' + encode(room) + b',"offset":"'
    tail = (b',"from":' + encode(sender) if sender else b"") + b',"data":' + encode(data) + b"}"
    return head, tail


def build_frame(head: bytes, offset: bytes, tail: bytes) -> bytes:
    """The frame a stored entry stands for (the same concatenation as the script)."""
    ms = offset.partition(b"-")[0]
    return head + offset + b'","ts":' + ms + tail


def state_frame(room: str, version: int, members: list[bytes]) -> bytes:
    """The `presence_update` of kind `state`, joining the stored member JSON as is."""
    return (b'{"type":"presence_update","room":' + json.dumps(room).encode()
            + b',"data":{"kind":"state","version":' + str(version).encode()
            + b',"members":[' + b",".join(members) + b"]}}")
