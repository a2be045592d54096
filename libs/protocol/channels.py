"""The pub/sub messages between processes, as types: one parser and one formatter each.

Two kinds of channel carry them (names in keys.py):

- A **room channel** carries `RoomMessage`s, `<offset> <frame>` (the room's
  history id, then the finished client frame: room_publish.lua writes them),
  and `PresenceDiffNote`s, `- <version> <frame>` (a presence diff at the
  room's presence version: the presence flush writes them; no history).
- A **node channel** (one per gateway) carries `StatesReady`,
  `P <room>\\n<version>\\n<conn> <conn> ...` (presence has the state of these
  joiners at this version or newer: read it), and `CloseConnection`, JSON
  `{"kind": "close", "conn", "code", "reason"}` (sessions revoking a session),
  and the admin API's `AdminCommand`s, JSON too, sent to every live gateway:
  `{"kind": "disconnect_user", "tenant", "user", "code", "reason"}`,
  `{"kind": "kick", "tenant", "user", "room", "reason"}` and
  `{"kind": "close_room", "tenant", "room", "reason"}` (each gateway applies them to its
  own connections, so nothing needs to know where a connection lives).

Lua scripts write some of these bytes, so the layouts here are the contract the
scripts follow; tests/service checks what the scripts publish against these
parsers. A message no parser knows raises `ChannelMessageError`: the receiver
logs and drops it, since one bad message must not stop a channel.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True, slots=True)
class DisconnectUser:
    tenant: str
    user: str
    code: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class KickUser:
    tenant: str
    user: str
    room: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CloseRoom:
    tenant: str
    room: str
    reason: str = ""


AdminCommand = DisconnectUser | KickUser | CloseRoom
NodeMessage = StatesReady | CloseConnection | AdminCommand

# kind → (type, its str fields besides `code`/`reason`)
_ADMIN_KINDS: dict[str, tuple[type, tuple[str, ...]]] = {
    "disconnect_user": (DisconnectUser, ("tenant", "user")),
    "kick": (KickUser, ("tenant", "user", "room")),
    "close_room": (CloseRoom, ("tenant", "room")),
}


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


def parse_node(data: bytes) -> NodeMessage:
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
    kind = msg.get("kind") if isinstance(msg, dict) else None
    if kind in _ADMIN_KINDS:
        return _parse_admin(kind, msg, data)
    if kind != "close" or not isinstance(msg.get("conn"), str):
        raise ChannelMessageError(f"node channel: not a known message: {data[:60]!r}")
    return CloseConnection(msg["conn"], _code(msg, data), str(msg.get("reason", ""))[:120])


def _code(msg: dict[str, Any], data: bytes) -> int:
    try:
        return int(msg.get("code", 1000))
    except (TypeError, ValueError):
        raise ChannelMessageError(f"close with a bad code: {data[:60]!r}") from None


def _parse_admin(kind: str, msg: dict[str, Any], data: bytes) -> AdminCommand:
    cls, names = _ADMIN_KINDS[kind]
    fields: dict[str, Any] = {name: msg.get(name) for name in names}
    if not all(isinstance(value, str) for value in fields.values()):
        raise ChannelMessageError(f"{kind}: missing or bad fields in {data[:60]!r}")
    fields["reason"] = str(msg.get("reason") or "")[:120]
    if cls is DisconnectUser:
        fields["code"] = _code(msg, data)
    command: AdminCommand = cls(**fields)
    return command


def format_admin(command: AdminCommand) -> bytes:
    kind = next(k for k, (cls, _) in _ADMIN_KINDS.items() if isinstance(command, cls))
    return json.dumps({"kind": kind, **dataclasses.asdict(command)}).encode()


def format_states_ready(room: str, version: int, conns: list[str] | tuple[str, ...]) -> bytes:
    return f"P {room}\n{version}\n{' '.join(conns)}".encode()


def format_close(conn: str, code: int, reason: str = "") -> bytes:
    return json.dumps({"kind": "close", "conn": conn, "code": int(code),
                       "reason": reason}).encode()
