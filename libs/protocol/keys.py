"""Every Redis key, stream, consumer group and channel name, built in one place.

A room's history stream, its metadata, its idempotency keys and its pub/sub
channel share the hash tag `{r/<tenant>/<room>}`, so they sit on one Redis
Cluster slot and one Lua script may touch them all. Tenants cannot contain
`/` (see `names.py`), so `<tenant>/<room>` is unambiguous. The prefix is
configurable; tests give every run its own.
"""

from __future__ import annotations

from dataclasses import dataclass

EVENT_GROUPS = ("presence", "sessions", "activity")


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "gw"

    # --- rooms -----------------------------------------------------------
    def room_tag(self, tenant: str, room: str) -> str:
        return f"{self.prefix}:{{r/{tenant}/{room}}}"

    def history(self, tenant: str, room: str) -> str:
        """Stream of the room's messages; entry ids are the room's offsets."""
        return self.room_tag(tenant, room) + ":h"

    def room_meta(self, tenant: str, room: str) -> str:
        """Hash: `origin`, the offset from which this Redis holds the room's history."""
        return self.room_tag(tenant, room) + ":m"

    def room_channel(self, tenant: str, room: str) -> str:
        return self.room_tag(tenant, room) + ":c"

    def room_idempotency(self, tenant: str, room: str, key: str) -> str:
        return self.room_tag(tenant, room) + ":i:" + key

    # --- users -------------------------------------------------------------
    def user_channel(self, tenant: str, user: str) -> str:
        return f"{self.prefix}:u:{tenant}/{user}"

    def user_nodes(self, tenant: str, user: str) -> str:
        """Hash node id → number of that user's connections on the node."""
        return f"{self.prefix}:un:{tenant}/{user}"

    # --- tenants, nodes, publishing -------------------------------------------
    def tenant_channel(self, tenant: str) -> str:
        """Broadcast to every connection of a tenant."""
        return f"{self.prefix}:t:{tenant}"

    def node_channel(self, node_id: str) -> str:
        return f"{self.prefix}:node:{node_id}"

    def node_alive(self, node_id: str) -> str:
        """Liveness key with a TTL, refreshed while the node runs."""
        return f"{self.prefix}:node:{node_id}:alive"

    def nodes(self) -> str:
        """Sorted set node id → expiry (ms): the nodes believed alive."""
        return f"{self.prefix}:nodes"

    def idempotency(self, tenant: str, key: str) -> str:
        """Idempotency key of a user or broadcast publish."""
        return f"{self.prefix}:idem:{tenant}/{key}"

    # --- services ----------------------------------------------------------------
    def events(self) -> str:
        """Stream of gateway events consumed by presence, sessions and activity."""
        return f"{self.prefix}:events"

    def consumer_group(self, service: str) -> str:
        return f"{self.prefix}:{service}"

    def channel_kind(self, channel: str) -> str:
        """`room`, `user`, `tenant` or `node`, from a channel name built here."""
        rest = channel[len(self.prefix) + 1 :]
        if rest.startswith("{r/"):
            return "room"
        return {"u": "user", "t": "tenant", "node": "node"}.get(rest.split(":", 1)[0], "unknown")
