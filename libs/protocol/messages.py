"""Server → client messages of protocol v1, and the data each one carries.

The gateway builds hot-path frames (room messages) as bytes without these
models; the models are the contract: tests check that what the gateway
sends validates against them, and the AsyncAPI document is generated from
them.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from goldwire.protocol.codes import ErrorCode
from goldwire.protocol.commands import Ref


class MessageType(StrEnum):
    """The seven message types of the seed."""

    SYSTEM_MESSAGE = "system_message"
    USER_MESSAGE = "user_message"
    DOCUMENT_UPDATE = "document_update"
    PRESENCE_UPDATE = "presence_update"
    ROOM_UPDATE = "room_update"
    NOTIFICATION = "notification"
    ERROR = "error"


ROOM_MESSAGE_TYPES = frozenset({MessageType.USER_MESSAGE, MessageType.DOCUMENT_UPDATE})


class _Data(BaseModel):
    model_config = ConfigDict(extra="allow")


class UserRef(BaseModel):
    id: str
    name: str | None = None


class Message(BaseModel):
    """Any server → client frame."""

    model_config = ConfigDict(populate_by_name=True)

    type: MessageType
    room: str | None = None
    offset: str | None = None
    ts: int | None = None
    from_: UserRef | None = Field(default=None, alias="from")
    data: dict[str, Any] = Field(default_factory=dict)
    ref: Ref | None = None


# --- data of replies (system_message with a ref) ---------------------------


class SessionInfo(_Data):
    id: str
    resumed: bool
    rooms: list[dict[str, str]] = Field(default_factory=list)
    state: dict[str, Any] = Field(default_factory=dict)


class JoinResult(_Data):
    room: str
    offset: str
    recovered: bool | None = None
    # False when the room's options (ROOM_OPTIONS) turn presence off: no presence_update
    # will come for it. Absent otherwise.
    presence: bool | None = None


class JoinFailure(_Data):
    room: str
    error: dict[str, str]


class ConnectReply(_Data):
    conn_id: str
    session_id: str
    session: SessionInfo
    user: UserRef
    node: str
    heartbeat: float
    expires_at: int  # ms since the epoch: the token's `exp`; `refresh` before it (+ JWT_LEEWAY)
    rooms: list[JoinResult | JoinFailure] = Field(default_factory=list)


class LeaveReply(_Data):
    room: str


class PublishReply(_Data):
    room: str
    offset: str


class SendReply(_Data):
    delivered: int


class StatusReply(_Data):
    status: Literal["online", "away", "busy"]


class PongReply(_Data):
    pong: Literal[True]


class SessionReply(_Data):
    session_id: str


class PrefsReply(_Data):
    version: int


class RefreshReply(_Data):
    expires_at: int  # ms since the epoch: the new token's `exp`


class ErrorData(_Data):
    code: ErrorCode
    message: str


# --- presence and room events -------------------------------------------------


class PresenceMember(_Data):
    user: UserRef
    status: str
    connections: int
    meta: dict[str, Any] = Field(default_factory=dict)


class PresenceState(_Data):
    """The whole room at `version`; the diffs after it carry higher versions."""

    kind: Literal["state"]
    version: int
    members: list[PresenceMember]


class PresenceDiff(_Data):
    """What changed to reach `version`; a client drops a diff not above its version."""

    kind: Literal["diff"]
    version: int
    joins: list[PresenceMember] = Field(default_factory=list)
    leaves: list[PresenceMember] = Field(default_factory=list)
    updates: list[PresenceMember] = Field(default_factory=list)


class RoomUpdate(_Data):
    """Room-level events. `kind` is one of `resync` (the gateway lost the live
    feed and could not prove nothing was missed: reload the room over HTTP),
    `closed` (an operator closed the room: every member is out of it),
    `kicked` (an operator removed this user from the room: this connection is
    out of it), `counts` (reserved: not sent yet). After `closed` or `kicked`
    the connection is no longer a member; a later `join` may be accepted again.
    `reason` is the operator's text, when they gave one."""

    kind: Literal["resync", "closed", "kicked", "counts"]
    reason: str | None = None


def room_update_frame(room: str, kind: str, **data: Any) -> bytes:
    """A `room_update` frame: `{"type": "room_update", "room", "data": {"kind", ...}}`."""
    return encode({"type": "room_update", "room": room, "data": {"kind": kind, **data}})


# --- encoding -----------------------------------------------------------------


def encode(obj: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, the one encoding every frame uses."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def direct_frame(type_: str, data: dict[str, Any], sender: dict[str, Any] | None,
                 ts_ms: int) -> bytes:
    """A message to a user or to a whole tenant: no room, no offset."""
    msg: dict[str, Any] = {"type": type_, "ts": ts_ms}
    if sender:
        msg["from"] = sender
    msg["data"] = data
    return encode(msg)


def reply(ref: Ref | None, data: dict[str, Any]) -> bytes:
    """A successful command reply: a `system_message` carrying the command's ref."""
    msg: dict[str, Any] = {"type": "system_message", "data": data}
    if ref is not None:
        msg["ref"] = ref
    return encode(msg)


def error(code: ErrorCode, message: str, ref: Ref | None = None, **extra: Any) -> bytes:
    """An `error` frame, with the ref of the failed command when there is one.

    `extra` adds fields to `data` (a `conflict` carries the current values)."""
    msg: dict[str, Any] = {"type": "error",
                           "data": {"code": str(code), "message": message, **extra}}
    if ref is not None:
        msg["ref"] = ref
    return encode(msg)
