"""`/v1/admin/...`: an operator's view of who is connected, and the means to remove them.

API key, like `/v1/publish`. Listing reads the connection index (conn_index.py);
actions are sent to every live gateway over its node channel (admin.py applies
them), so they reach connections wherever they are. Room counts are presence's
view, so they follow the event stream (and need the presence service running).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from goldwire.gateway.node import GatewayNode
from goldwire.gateway.publish_api import node_of, require_api_key
from goldwire.protocol.admin import (
    AdminResult,
    CloseRoomRequest,
    DisconnectRequest,
    KickRequest,
    RoomCounts,
    UserConnections,
)
from goldwire.protocol.channels import CloseRoom, DisconnectUser, KickUser
from goldwire.protocol.names import DEFAULT_TENANT, RoomName, TenantName, UserId
from goldwire.store.connect import STORE_ERRORS

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_api_key)])

Tenant = Annotated[TenantName, Query(description="the tenant (default `default`)")]
User = Annotated[UserId, Path(description="user id (a token's `sub`); `/` allowed")]
Room = Annotated[RoomName, Path(description="room name; `/` allowed")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "the user has no live connection (in that room)"}}


def _unavailable(exc: Exception) -> HTTPException:
    return HTTPException(503, "storage unavailable; retry")


async def _connections(node: GatewayNode, tenant: str, user: str) -> UserConnections:
    try:
        live = await node.live_node_ids()
        conns = await node.index.read(node.broker.redis, tenant, user, live)
    except STORE_ERRORS as exc:
        raise _unavailable(exc) from exc
    return UserConnections(tenant=tenant, user=user, connections=conns)


@router.get("/users/{user:path}/connections", response_model=UserConnections,
            summary="A user's live connections on every gateway")
async def user_connections(user: User, tenant: Tenant = DEFAULT_TENANT,
                           node: GatewayNode = Depends(node_of)) -> UserConnections:
    """Each live connection with its gateway, rooms, `connected_at` (ms), session, device
    (User-Agent), status and meta. A user with none (or unknown) gets an empty list."""
    return await _connections(node, tenant, user)


@router.post("/users/{user:path}/disconnect", response_model=AdminResult, responses=NOT_FOUND,
             summary="Close every connection of a user")
async def disconnect_user(user: User, body: DisconnectRequest,
                          node: GatewayNode = Depends(node_of)) -> AdminResult:
    """Every connection of the user on every gateway is closed with `code` (4000–4999;
    default 4011, "disconnected by an operator": clients do not reconnect by themselves).
    404 when the user has no live connection."""
    listed = (await _connections(node, body.tenant, user)).connections
    if not listed:
        raise HTTPException(404, {"code": "not_found", "message": "no live connection"})
    return await _send(node, DisconnectUser(body.tenant, user, body.code, body.reason),
                       len(listed))


@router.post("/rooms/{room:path}/kick", response_model=AdminResult, responses=NOT_FOUND,
             summary="Take a user out of a room")
async def kick(room: Room, body: KickRequest,
               node: GatewayNode = Depends(node_of)) -> AdminResult:
    """The user's connections in the room get `room_update` `kicked` and leave it; the
    other members see a presence leave. Nothing stops a rejoin the token allows.
    404 when none of the user's connections is in the room."""
    listed = (await _connections(node, body.tenant, body.user)).connections
    inside = [c for c in listed if room in c.rooms]
    if not inside:
        raise HTTPException(404, {"code": "not_found", "message": "user is not in the room"})
    return await _send(node, KickUser(body.tenant, body.user, room, body.reason or ""),
                       len(inside))


@router.post("/rooms/{room:path}/close", response_model=AdminResult,
             summary="Close a room: every member leaves it")
async def close_room(room: Room, body: CloseRoomRequest,
                     node: GatewayNode = Depends(node_of)) -> AdminResult:
    """Every member gets `room_update` `closed` and leaves; the others see presence
    leaves. `connections` is presence's count before the close. The room's history is
    kept, and a later join the token allows is accepted."""
    counts = await _counts(node, body.tenant, room)
    return await _send(node, CloseRoom(body.tenant, room, body.reason or ""),
                       counts.connections)


@router.get("/rooms/{room:path}", response_model=RoomCounts,
            summary="A room's live connections and distinct users")
async def room_counts(room: Room, tenant: Tenant = DEFAULT_TENANT,
                      node: GatewayNode = Depends(node_of)) -> RoomCounts:
    """Presence's view: it follows the event stream, so a join or leave shows a moment
    later. An unknown room counts zero."""
    return await _counts(node, tenant, room)


async def _counts(node: GatewayNode, tenant: str, room: str) -> RoomCounts:
    keys = node.keys
    try:
        pipe = node.broker.redis.pipeline(transaction=False)
        pipe.hlen(keys.presence_conns(tenant, room))
        pipe.hlen(keys.presence_counts(tenant, room))
        conns, users = await pipe.execute()
    except STORE_ERRORS as exc:
        raise _unavailable(exc) from exc
    return RoomCounts(tenant=tenant, room=room, connections=conns, users=users)


async def _send(node: GatewayNode, command: DisconnectUser | KickUser | CloseRoom,
                connections: int) -> AdminResult:
    try:
        reached = await node.admin_command(command)
    except STORE_ERRORS as exc:
        raise _unavailable(exc) from exc
    return AdminResult(nodes=reached, connections=connections)
