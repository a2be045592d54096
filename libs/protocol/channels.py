"""The pub/sub messages between processes, as types: one parser and one formatter each.

Two kinds of channel carry them (names in keys.py):

- A **room channel** carries `RoomMessage`s, `<offset> <frame>` (the room's
  history id, then the finished client frame: room_publish.lua writes them),
  and `PresenceDiffNote`s, `- <version> <frame>` (a presence diff at the
  room's presence version: the presence flush writes them; no history).
- A **node channel** (one per gateway) carries `StatesReady`,
  `P <room>\\n<version>\\n<conn> <conn> ...` (presence has the state of these
  joiners at this version or newer: read it), and `CloseConnection`, JSON
  `{"kind": "close", "conn", "code", "reason"}` (sessions revoking a session).

Lua scripts write some of these bytes, so the layouts here are the contract the
scripts follow; tests/service checks what the scripts publish against these
parsers. A message no parser knows raises `ChannelMessageError`: the receiver
logs and drops it, since one bad message must not stop a channel.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from goldwire.protocol.offsets import Offset, parse_offset


class ChannelMessageError(ValueError):
    """Bytes on a channel that are none of the messages below."""


@dataclass(frozen=True, slots=True)
class RoomMessage:
    offset: Offset
    frame: bytes


@dataclass(frozen=True, slots=True)
class PresenceDiffNote:
    version: int
    frame: bytes


@dataclass(frozen=True, slots=True)
class StatesReady:
    room: str
    version: int
    conns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CloseConnection:
    conn: str
    code: int
    reason: str = ""


def parse_room(data: bytes) -> RoomMessage | PresenceDiffNote:
    head, sep, rest = data.partition(b" ")
    if not sep:
        raise ChannelMessageError(f"room channel: no space in {data[:60]!r}")
    try:
        if head == b"-":
            version, sep, frame = rest.partition(b" ")
            if not sep:
                raise ChannelMessageError(f"presence diff without a frame: {data[:60]!r}")
            return PresenceDiffNote(int(version), frame)
        return RoomMessage(parse_offset(head), rest)
    except ValueError as exc:
        if isinstance(exc, ChannelMessageError):
            raise
        raise ChannelMessageError(f"room channel: {exc}") from None


def format_room_message(offset: str, frame: bytes) -> bytes:
    return offset.encode() + b" " + frame


def format_presence_diff(version: int, frame: bytes) -> bytes:
    return b"- " + str(version).encode() + b" " + frame


def parse_node(data: bytes) -> StatesReady | CloseConnection:
    if data.startswith(b"P "):
        try:
            room, version, conns = data[2:].decode().split("\n", 2)
            return StatesReady(room, int(version), tuple(c for c in conns.split(" ") if c))
        except ValueError as exc:
            raise ChannelMessageError(f"states ready: {exc}") from None
    try:
        msg = json.loads(data)
    except ValueError as exc:
        raise ChannelMessageError(f"node channel: not a known message ({exc})") from None
    if not isinstance(msg, dict) or msg.get("kind") != "close" \
            or not isinstance(msg.get("conn"), str):
        raise ChannelMessageError(f"node channel: not a known message: {data[:60]!r}")
    try:
        code = int(msg.get("code", 1000))
    except (TypeError, ValueError):
        raise ChannelMessageError(f"close with a bad code: {data[:60]!r}") from None
    return CloseConnection(msg["conn"], code, str(msg.get("reason", ""))[:120])


def format_states_ready(room: str, version: int, conns: list[str] | tuple[str, ...]) -> bytes:
    return f"P {room}\n{version}\n{' '.join(conns)}".encode()


def format_close(conn: str, code: int, reason: str = "") -> bytes:
    return json.dumps({"kind": "close", "conn": conn, "code": int(code),
                       "reason": reason}).encode()
