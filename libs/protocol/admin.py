"""Bodies and answers of the gateway's admin API (`/v1/admin/...`, API key).

Kept apart from the publish API's models (http.py): operators' calls change who is
connected and where, never what a room holds.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from goldwire.protocol.codes import CloseCode
from goldwire.protocol.names import DEFAULT_TENANT, TenantName, UserId

Reason = Annotated[str, StringConstraints(max_length=120)]  # a close reason fits a frame


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DisconnectRequest(_Body):
    """Close every connection of a user, on every gateway, with `code`."""

    tenant: TenantName = DEFAULT_TENANT
    code: Annotated[int, Field(ge=4000, le=4999)] = int(CloseCode.DISCONNECTED)
    reason: Reason = "disconnected by an operator"


class KickRequest(_Body):
    """Take a user's connections out of one room (`room_update` `kicked` to them)."""

    tenant: TenantName = DEFAULT_TENANT
    user: UserId
    reason: Reason | None = None


class CloseRoomRequest(_Body):
    """Take every member out of the room (`room_update` `closed` to each)."""

    tenant: TenantName = DEFAULT_TENANT
    reason: Reason | None = None


class ConnectionInfo(BaseModel):
    """One live connection, as the gateway that holds it recorded it."""

    conn: str
    node: str
    rooms: list[str]
    connected_at: int  # ms since the epoch
    session: str | None = None
    device: str | None = None  # the upgrade request's User-Agent
    status: str = "online"
    meta: dict[str, Any] | None = None


class UserConnections(BaseModel):
    tenant: str
    user: str
    connections: list[ConnectionInfo]


class AdminResult(BaseModel):
    """What an admin action reached: the gateways told, and the user's connections the
    connection index listed as concerned when the call was made."""

    nodes: int
    connections: int


class RoomCounts(BaseModel):
    """The room as presence sees it: live connections and distinct users in it."""

    tenant: str
    room: str
    connections: int
    users: int
