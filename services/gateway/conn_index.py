"""The connection index: every live connection of a user, over all gateways, in Redis.

Why a hash of our own (`Keys.user_connections`, conn id → JSON record) rather than
what Redis already holds: the sessions' `sc` hashes are per session and are cleaned
by the sessions service, the presence records come from the presence service and
carry neither node nor device, and `user_nodes` holds counts, not ids. Asking every
gateway over its node channel would need a reply channel and a deadline. Here the
gateway that holds a connection writes its record (through the outbox: ordered,
retried, no wait on the hot path) at connect, join, leave and status, deletes it at
close, and keeps the hash alive with the same refresh as the user's slot counts. A
record of a gateway that died is left behind until the hash expires: a reader keeps
only records of live nodes, so the list is exact for every gateway that is up.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from goldwire.protocol.admin import ConnectionInfo

Command = Callable[..., None]  # Outbox.command


def record(conn: Any, node_id: str) -> str:
    """The JSON record of one connection (see ConnectionInfo for the fields)."""
    return json.dumps({"node": node_id, "rooms": sorted(conn.rooms),
                       "connected_at": conn.connected_at, "session": conn.session_id,
                       "device": conn.device or None, "status": conn.status,
                       "meta": conn.meta}, separators=(",", ":"))


def parse(records: dict[bytes, bytes], live_nodes: Iterable[str]) -> list[ConnectionInfo]:
    """The records of connections on live nodes, oldest first; unreadable ones skipped."""
    live = set(live_nodes)
    out = []
    for conn, raw in records.items():
        try:
            fields = json.loads(raw)
            info = ConnectionInfo(conn=conn.decode(), **fields)
        except (ValueError, TypeError):
            continue
        if info.node in live:
            out.append(info)
    return sorted(out, key=lambda c: (c.connected_at, c.conn))


class ConnectionIndex:
    """Writes one node's records; reads anyone's."""

    def __init__(self, keys: Any, node_id: str, ttl_ms: int, command: Command) -> None:
        self.keys = keys
        self.node_id = node_id
        self.ttl_ms = ttl_ms
        self.command = command

    def put(self, conn: Any) -> None:
        p = conn.principal
        key = self.keys.user_connections(p.tenant, p.user_id)
        self.command("HSET", key, conn.id, record(conn, self.node_id))
        self.command("PEXPIRE", key, self.ttl_ms)

    def drop(self, conn: Any) -> None:
        p = conn.principal
        self.command("HDEL", self.keys.user_connections(p.tenant, p.user_id), conn.id)

    def keep_alive(self, tenant: str, user: str) -> None:
        self.command("PEXPIRE", self.keys.user_connections(tenant, user), self.ttl_ms)

    async def read(self, redis: Any, tenant: str, user: str,
                   live_nodes: Iterable[str]) -> list[ConnectionInfo]:
        return parse(await redis.hgetall(self.keys.user_connections(tenant, user)), live_nodes)
