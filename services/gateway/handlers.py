"""One handler per command type; `run_command` turns failures into replies.

Handlers return the reply's `data` (sent as a `system_message` with the
command's `ref`) or raise `CommandError`; join-like handlers write their own
reply so that the replay can follow it with no await in between.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from goldwire.gateway.auth import AuthError, Principal
from goldwire.gateway.authz import Action, AuthzUnavailable
from goldwire.gateway.connection import CommandError, Connection, ConnState
from goldwire.gateway.node import GatewayNode, PublishTooLarge
from goldwire.gateway.rooms import PendingJoin
from goldwire.gateway.slots import SlotsRefused
from goldwire.protocol.codes import CloseCode, ErrorCode
from goldwire.protocol.commands import (
    Connect,
    Join,
    Leave,
    Ping,
    Prefs,
    Publish,
    Refresh,
    Send,
    Session,
    Status,
)
from goldwire.protocol.messages import error, reply
from goldwire.protocol.names import room_matches
from goldwire.service.http import bearer_token
from goldwire.store.connect import STORE_ERRORS
from goldwire.store.sessions import InvalidValue, PreferencesConflict

log = logging.getLogger("goldwire.gateway.handlers")

MAX_STATUS_META_BYTES = 1024

Handler = Callable[[GatewayNode, Connection, Any], Awaitable[dict[str, Any] | None]]


async def run_command(node: GatewayNode, conn: Connection, command: Any) -> None:
    handler = HANDLERS[type(command)]
    try:
        data = await handler(node, conn, command)
    except CommandError as exc:
        conn.send(error(exc.code, exc.message, command.ref, **exc.extra))
        return
    except AuthError as exc:
        conn.fail_auth(exc)
        return
    except PublishTooLarge as exc:
        conn.send(error(ErrorCode.TOO_LARGE, str(exc), command.ref))
        return
    except AuthzUnavailable as exc:
        conn.send(error(ErrorCode.UNAVAILABLE, f"authorization service: {exc}", command.ref))
        return
    except STORE_ERRORS:
        log.warning("redis unavailable during %s", type(command).__name__, exc_info=True)
        conn.send(error(ErrorCode.UNAVAILABLE, "storage unavailable; retry", command.ref))
        return
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("command %s failed", type(command).__name__)
        conn.send(error(ErrorCode.INTERNAL, "internal error", command.ref))
        return
    if data is not None:
        conn.send(reply(command.ref, data))


def _principal_for(node: GatewayNode, conn: Connection, command: Connect) -> Principal:
    if command.token:
        return node.verifier.verify(command.token)
    if conn.header_auth:
        token = bearer_token(conn.header_auth)
        if token is None:
            raise AuthError("Authorization header must be 'Bearer <token>'")
        return node.verifier.verify(token)
    raise AuthError("missing token")


async def handle_connect(node: GatewayNode, conn: Connection, command: Connect) -> None:
    if conn.state is ConnState.READY:
        raise CommandError(ErrorCode.BAD_REQUEST, "already connected")
    principal = _principal_for(node, conn, command)
    try:
        await node.admit(conn, principal.tenant, principal.user_id)
    except SlotsRefused as exc:
        conn.close(CloseCode.TOO_MANY_CONNECTIONS, str(exc))
        return None
    except STORE_ERRORS:
        log.warning("connect failed: redis unavailable", exc_info=True)
        conn.close(CloseCode.INTERNAL_ERROR, "storage unavailable; reconnect")
        return None
    if conn.is_closed:
        return None
    conn.authenticated(principal)
    try:
        session = await node.sessions.open(principal.tenant, principal.user_id,
                                           command.session_id, conn.id, node.node_id,
                                           conn.device, index=node.outbox.command)
        conn.session_id = session.id
        await node.attach(conn)
    except STORE_ERRORS:
        log.warning("connect failed: redis unavailable", exc_info=True)
        conn.close(CloseCode.INTERNAL_ERROR, "storage unavailable; reconnect")
        return None
    joins: list[PendingJoin] = []
    results: list[dict[str, Any]] = []
    for wanted in command.rooms:
        try:
            pending = await _prepare_join(node, conn, wanted.room, wanted.since)
        except CommandError as exc:
            results.append({"room": wanted.room,
                            "error": {"code": str(exc.code), "message": exc.message}})
            continue
        joins.append(pending)
        results.append(pending.result())
    if not conn.is_ready:
        for pending in joins:
            node.rooms.abandon(pending)
        return None
    conn.send(reply(command.ref, {
        "conn_id": conn.id,
        "session_id": conn.session_id,
        "session": session.wire(),
        "user": principal.public(),
        "node": node.node_id,
        "heartbeat": node.settings.websocket_heartbeat_interval,
        "expires_at": _expires_ms(principal),
        "rooms": results,
    }))
    for pending in joins:
        _finish_join(node, conn, pending)
    return None


async def _prepare_join(node: GatewayNode, conn: Connection, room: str,
                        since: str | None) -> PendingJoin:
    principal = conn.principal
    assert principal is not None
    if room in conn.rooms:
        raise CommandError(ErrorCode.CONFLICT, f"already in room {room!r}")
    if len(conn.rooms) >= node.settings.max_rooms_per_connection:
        raise CommandError(ErrorCode.TOO_LARGE,
                           f"room limit reached ({node.settings.max_rooms_per_connection})")
    if not await node.authorizer.allowed(principal, room, Action.JOIN):
        raise CommandError(ErrorCode.FORBIDDEN, f"not allowed to join room {room!r}")
    try:
        pending = await node.rooms.prepare_join(conn, principal.tenant, room, since)
    except STORE_ERRORS as exc:
        raise CommandError(ErrorCode.UNAVAILABLE, "storage unavailable; retry") from exc
    conn.rooms[room] = pending.room
    return pending


def _finish_join(node: GatewayNode, conn: Connection, pending: PendingJoin) -> None:
    if node.rooms.complete_join(pending):
        assert conn.principal is not None
        node.outbox.event("join", conn, room=pending.room.name, name=conn.principal.name,
                          offset=pending.history.resume_offset(),
                          presence=None if pending.room.presence else "off")
        node.index.put(conn)
    else:
        conn.rooms.pop(pending.room.name, None)


async def handle_join(node: GatewayNode, conn: Connection, command: Join) -> None:
    pending = await _prepare_join(node, conn, command.room, command.since)
    if not conn.is_ready:
        node.rooms.abandon(pending)
        return None
    conn.send(reply(command.ref, pending.result()))
    _finish_join(node, conn, pending)
    return None


async def handle_leave(node: GatewayNode, conn: Connection, command: Leave) -> dict[str, Any]:
    room = conn.rooms.pop(command.room, None)
    if room is None:
        raise CommandError(ErrorCode.NOT_FOUND, f"not in room {command.room!r}")
    node.rooms.leave(conn, room)
    node.outbox.event("leave", conn, room=command.room,
                      presence=None if room.presence else "off")
    node.index.put(conn)
    return {"room": command.room}


async def handle_publish(node: GatewayNode, conn: Connection, command: Publish) -> dict[str, Any]:
    principal = conn.principal
    assert principal is not None
    if not await node.authorizer.allowed(principal, command.room, Action.PUBLISH):
        raise CommandError(ErrorCode.FORBIDDEN, f"not allowed to publish to room {command.room!r}")
    offset, _ = await node.publish_room(principal.tenant, command.room, command.type,
                                        command.data, sender=principal.public())
    node.outbox.event("publish", conn, room=command.room, type=command.type, offset=offset)
    return {"room": command.room, "offset": offset}


async def handle_send(node: GatewayNode, conn: Connection, command: Send) -> dict[str, Any]:
    """A direct message to a user of the sender's tenant. A token with a `send` claim may
    reach only the user ids its patterns match (`[]`: no one); without one, anyone."""
    principal = conn.principal
    assert principal is not None
    if principal.send is not None and not room_matches(command.user, principal.send):
        raise CommandError(ErrorCode.FORBIDDEN, f"not allowed to send to user {command.user!r}")
    delivered, _ = await node.send_to_user(principal.tenant, command.user, "user_message",
                                        command.data, sender=principal.public())
    node.outbox.event("send", conn, to=command.user)
    return {"delivered": delivered}


async def handle_status(node: GatewayNode, conn: Connection, command: Status) -> dict[str, Any]:
    if command.meta is not None and len(json.dumps(command.meta)) > MAX_STATUS_META_BYTES:
        raise CommandError(ErrorCode.TOO_LARGE, f"meta over {MAX_STATUS_META_BYTES} bytes")
    conn.status = command.status
    conn.meta = command.meta
    node.outbox.event("status", conn, status=command.status, meta=command.meta)
    node.index.put(conn)
    return {"status": command.status}


async def handle_ping(node: GatewayNode, conn: Connection, command: Ping) -> dict[str, Any]:
    return {"pong": True}


async def handle_session(node: GatewayNode, conn: Connection, command: Session) -> dict[str, Any]:
    p = conn.principal
    assert p is not None and conn.session_id is not None
    try:
        kept = await node.sessions.set_state(p.tenant, p.user_id, conn.session_id, command.state)
    except InvalidValue as exc:
        raise CommandError(ErrorCode.TOO_LARGE, str(exc)) from None
    if not kept:
        raise CommandError(ErrorCode.NOT_FOUND, "the session expired or was revoked")
    node.outbox.event("session_state", conn)
    return {"session_id": conn.session_id}


async def handle_prefs(node: GatewayNode, conn: Connection, command: Prefs) -> dict[str, Any]:
    p = conn.principal
    assert p is not None
    try:
        version = await node.sessions.write_prefs(p.tenant, p.user_id, command.values,
                                                  command.version)
    except InvalidValue as exc:
        raise CommandError(ErrorCode.TOO_LARGE, str(exc)) from None
    except PreferencesConflict as exc:
        raise CommandError(ErrorCode.CONFLICT, str(exc),
                           values=exc.values, version=exc.version) from None
    return {"version": version}


async def handle_refresh(node: GatewayNode, conn: Connection,
                         command: Refresh) -> dict[str, Any] | None:
    """Swap in a new token for the same user and tenant; the connection lives on.

    A token that does not verify is refused with `unauthorized` and the old one still
    rules until it expires (the client may try again). A valid token for someone else
    is an attempt to change identity on a live socket: `forbidden`, then close 4001.
    The new token's room and publish claims apply to the joins and publishes after it.
    """
    current = conn.principal
    assert current is not None
    try:
        fresh = node.verifier.verify(command.token)
    except AuthError as exc:
        raise CommandError(ErrorCode.UNAUTHORIZED, str(exc)) from None
    if (fresh.user_id, fresh.tenant) != (current.user_id, current.tenant):
        conn.send(error(ErrorCode.FORBIDDEN, "refresh token is for another user or tenant",
                        command.ref))
        conn.close(CloseCode.UNAUTHORIZED, "refresh token is for another user")
        return None
    conn.authenticated(fresh)
    node.metrics.tokens_refreshed += 1
    return {"expires_at": _expires_ms(fresh)}


def _expires_ms(principal: Principal) -> int:
    return int(principal.expires_at * 1000)


HANDLERS: dict[type, Handler] = {
    Connect: handle_connect,
    Join: handle_join,
    Leave: handle_leave,
    Publish: handle_publish,
    Send: handle_send,
    Status: handle_status,
    Ping: handle_ping,
    Session: handle_session,
    Prefs: handle_prefs,
    Refresh: handle_refresh,
}
