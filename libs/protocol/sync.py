"""Response bodies of the frontend sync API (`/v2/sync/*`), as the gateway validates them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from goldwire.protocol.messages import PresenceMember, UserRef


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")  # the contract only grows


class RoomPresence(_Body):
    members: list[PresenceMember]
    version: int


class PresenceResponse(_Body):
    rooms: dict[str, RoomPresence]


class SessionRoom(_Body):
    room: str
    offset: str


class SessionDetail(_Body):
    id: str
    device: str = ""
    created: int
    last_seen: int
    rooms: list[SessionRoom] = Field(default_factory=list)
    state: dict[str, Any] = Field(default_factory=dict)


class Preferences(_Body):
    values: dict[str, Any]
    version: int


class BootstrapResponse(_Body):
    user: UserRef
    tenant: str
    session: SessionDetail | None
    preferences: Preferences
    unread: int
    presence: dict[str, RoomPresence]


class HistoryResponse(_Body):
    room: str
    offset: str
    messages: list[dict[str, Any]]
    recovered: bool | None = None
    complete: bool | None = None


class Notification(_Body):
    id: str
    ts: int
    data: dict[str, Any]
    read: bool


class NotificationsResponse(_Body):
    items: list[Notification]
    unread: int
    next: str | None


class UnreadResponse(_Body):
    unread: int


class SessionSummary(_Body):
    id: str
    device: str = ""
    created: int
    last_seen: int
    connections: int
    current: bool


class SessionsResponse(_Body):
    sessions: list[SessionSummary]


class RevokeResponse(_Body):
    revoked: str
