"""What one gateway does with an admin command from its node channel.

The admin API sends each command to every live gateway (channels.AdminCommand);
each applies it to its own connections only, so no one needs to know where a
connection lives and a connection that opened a moment ago is not missed. A
kicked or closed member leaves the room the way a client `leave` does (the same
`leave` event), so presence shows the others a normal leave. Walking this node's
connections is O(connections) per command: fine for an operator's call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from goldwire.protocol.channels import AdminCommand, CloseRoom, DisconnectUser, KickUser
from goldwire.protocol.messages import room_update_frame

if TYPE_CHECKING:
    from goldwire.gateway.connection import Connection
    from goldwire.gateway.node import GatewayNode


def apply(node: GatewayNode, command: AdminCommand) -> int:
    """Apply `command` here; returns how many local connections it touched."""
    touched = 0
    for conn in list(node.connections.values()):
        p = conn.principal
        if p is None or p.tenant != command.tenant or conn.is_closed:
            continue
        if isinstance(command, DisconnectUser):
            if p.user_id == command.user:
                conn.close(command.code, command.reason)
                touched += 1
        elif isinstance(command, KickUser):
            if p.user_id == command.user and _remove(node, conn, command.room, "kicked",
                                                      command.reason):
                touched += 1
        elif isinstance(command, CloseRoom):
            if _remove(node, conn, command.room, "closed", command.reason):
                touched += 1
    return touched


def _remove(node: GatewayNode, conn: Connection, name: str, kind: str,
            reason: str | None) -> bool:
    """Tell `conn` it is out of room `name`, then leave it as a client leave does.

    A join still in flight (not yet a member) is left alone: it completes."""
    room = conn.rooms.get(name)
    if room is None or conn.transport not in room.members:
        return False
    extra = {"reason": reason} if reason else {}
    conn.send(room_update_frame(name, kind, **extra))
    del conn.rooms[name]
    node.rooms.leave(conn, room)
    node.outbox.event("leave", conn, room=name, presence=None if room.presence else "off")
    node.index.put(conn)
    return True
