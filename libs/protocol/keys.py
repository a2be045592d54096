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
        """In the user's slot: sessions' and the inbox's scripts publish to it (SPUBLISH
        on a cluster must stay in the script's slot)."""
        return self.user_tag(tenant, user) + ":c"

    def user_nodes(self, tenant: str, user: str) -> str:
        """Hash node id → number of that user's connections on the node."""
        return f"{self.prefix}:un:{tenant}/{user}"

    # --- tenants, nodes, publishing -------------------------------------------
    def tenant_tag(self, tenant: str) -> str:
        return f"{self.prefix}:{{t/{tenant}}}"

    def tenant_channel(self, tenant: str) -> str:
        """Broadcast to every connection of a tenant."""
        return self.tenant_tag(tenant) + ":c"

    def node_channel(self, node_id: str) -> str:
        return f"{self.prefix}:node:{node_id}"

    def node_alive(self, node_id: str) -> str:
        """Liveness key with a TTL, refreshed while the node runs."""
        return f"{self.prefix}:node:{node_id}:alive"

    def node_epoch(self, node_id: str) -> str:
        """Without the liveness key's short TTL: its presence beside a missing liveness key
        means the node was presumed dead (and swept), not that Redis lost its data."""
        return f"{self.prefix}:node:{node_id}:epoch"

    def nodes(self) -> str:
        """Sorted set node id → expiry (ms): the nodes believed alive."""
        return f"{self.prefix}:nodes"

    def connect_rate(self, ip: str) -> str:
        """Token bucket (hash `t` tokens, `s` stamp ms) of one client IP's connects."""
        return f"{self.prefix}:rl:ip:{ip}"

    def publish_rate(self, tenant: str) -> str:
        """Token bucket of one tenant's HTTP publishes."""
        return f"{self.prefix}:rl:pub:{tenant}"

    def idempotency(self, tenant: str, key: str, user: str | None = None) -> str:
        """Idempotency key of a user publish (`user`) or a broadcast: in the slot of the
        channel it publishes to, so the claim and the publish are one script."""
        tag = self.user_tag(tenant, user) if user is not None else self.tenant_tag(tenant)
        return tag + ":i:" + key

    # --- presence: a room's side (the room's slot) -----------------------------------
    def presence_conns(self, tenant: str, room: str) -> str:
        """Hash conn id → `<seq>|<user>`: the connections present in the room."""
        return self.room_tag(tenant, room) + ":pc"

    def presence_members(self, tenant: str, room: str) -> str:
        """Hash user id → member JSON: what observers see (survives leave grace)."""
        return self.room_tag(tenant, room) + ":pm"

    def presence_counts(self, tenant: str, room: str) -> str:
        """Hash user id → number of that user's connections in the room."""
        return self.room_tag(tenant, room) + ":pn"

    def presence_user_versions(self, tenant: str, room: str) -> str:
        """Hash user id → the user-level version last shown in the room."""
        return self.room_tag(tenant, room) + ":pu"

    def presence_pending(self, tenant: str, room: str) -> str:
        """Sorted set user id → when (ms) their grace period ends and they leave."""
        return self.room_tag(tenant, room) + ":pl"

    def presence_version(self, tenant: str, room: str) -> str:
        """Counter: the room's presence version (state and diffs carry it)."""
        return self.room_tag(tenant, room) + ":pv"

    def presence_pending_diff(self, tenant: str, room: str) -> str:
        """Hash user id → the member view observers last saw ('' = none), for every user
        whose view changed since the room's last published diff."""
        return self.room_tag(tenant, room) + ":pd"

    def presence_pending_states(self, tenant: str, room: str) -> str:
        """Hash conn id → node channel: joiners whose state the next flush announces."""
        return self.room_tag(tenant, room) + ":ps"

    def presence_tombstone(self, tenant: str, room: str, conn: str) -> str:
        """The seq of a connection's last leave, so an older join seen later is ignored."""
        return self.room_tag(tenant, room) + ":pt:" + conn

    # --- presence: a user's side (the user's slot) ------------------------------------
    def user_tag(self, tenant: str, user: str) -> str:
        return f"{self.prefix}:{{u/{tenant}/{user}}}"

    def user_presence(self, tenant: str, user: str) -> str:
        """Hash conn id → `<seq>|<status>|<ts>|<meta json>` for each live connection."""
        return self.user_tag(tenant, user) + ":uc"

    def user_presence_version(self, tenant: str, user: str) -> str:
        """Counter bumped whenever the user's aggregate status or meta changes."""
        return self.user_tag(tenant, user) + ":uv"

    def user_conn_rooms(self, tenant: str, user: str, conn: str) -> str:
        """Set of the rooms one connection is in."""
        return self.user_tag(tenant, user) + ":cr:" + conn

    def user_rooms(self, tenant: str, user: str) -> str:
        """Hash room -> how many of the user's live connections are in it: the rooms a
        status change is shown in, read without walking each connection's set."""
        return self.user_tag(tenant, user) + ":ur"

    def user_connections(self, tenant: str, user: str) -> str:
        """Hash conn id → JSON record (node, rooms, connected_at, device, ...) of each live
        connection, written by the gateway that holds it: what the admin API lists."""
        return self.user_tag(tenant, user) + ":gc"

    def user_conn_gone(self, tenant: str, user: str, conn: str) -> str:
        """Tombstone: the connection disconnected; later-seen events of it are ignored."""
        return self.user_tag(tenant, user) + ":ug:" + conn

    def user_last_seen(self, tenant: str, user: str) -> str:
        return self.user_tag(tenant, user) + ":ls"

    # --- sessions and preferences (the user's slot) ---------------------------------
    def user_sessions(self, tenant: str, user: str) -> str:
        """Sorted set session id → expiry (ms): the user's live sessions."""
        return self.user_tag(tenant, user) + ":ss"

    def session(self, tenant: str, user: str, sid: str) -> str:
        """Hash: id, device, created, last_seen, state (JSON)."""
        return self.user_tag(tenant, user) + ":s:" + sid

    def session_rooms(self, tenant: str, user: str, sid: str) -> str:
        """Hash room → the last offset known delivered to the session."""
        return self.user_tag(tenant, user) + ":sr:" + sid

    def session_conns(self, tenant: str, user: str, sid: str) -> str:
        """Hash conn id → gateway node: where the session's sockets are."""
        return self.user_tag(tenant, user) + ":sc:" + sid

    def session_revoked(self, tenant: str, user: str, sid: str) -> str:
        """Tombstone: a revoked session id is never resumed."""
        return self.user_tag(tenant, user) + ":sx:" + sid

    def preferences(self, tenant: str, user: str) -> str:
        """Hash: values (JSON object), version."""
        return self.user_tag(tenant, user) + ":pf"

    def inbox(self, tenant: str, user: str) -> str:
        """Stream of the user's notifications; entry ids are notification ids."""
        return self.user_tag(tenant, user) + ":nb"

    def inbox_read(self, tenant: str, user: str) -> str:
        """Hash: `upto` (everything at or before it is read)."""
        return self.user_tag(tenant, user) + ":nr"

    def inbox_read_ids(self, tenant: str, user: str) -> str:
        """Set of ids read one by one after `upto`."""
        return self.user_tag(tenant, user) + ":ni"

    def inbox_idempotency(self, tenant: str, user: str, key: str) -> str:
        return self.user_tag(tenant, user) + ":nk:" + key

    def session_expiry(self) -> str:
        """Sorted set `<tenant>\t<user>\t<sid>` → expiry (ms), for the cleanup job."""
        return f"{self.prefix}:sessions:expiry"

    # --- presence: global indexes --------------------------------------------------------
    def presence_nodes(self) -> str:
        """Set of gateway nodes presence holds connections for (the sweep walks it)."""
        return f"{self.prefix}:pr:nodes"

    def presence_node_conns(self, node: str) -> str:
        """Set of `<tenant>\t<user>\t<conn>` of one gateway node."""
        return f"{self.prefix}:pr:n:{node}"

    def presence_due(self) -> str:
        """Sorted set `<tenant>\t<room>\t<due>` → due ms: one entry per pending leave."""
        return f"{self.prefix}:pr:due"

    def presence_events(self) -> str:
        """Stream of presence changes for backends (online/offline, joins/leaves)."""
        return f"{self.prefix}:presence:events"

    def job_queue(self, service: str) -> str:
        """The arq queue of one service."""
        return f"{self.prefix}:{service}:arq"

    # --- activity: everything of one tenant on one slot (`{a/<tenant>}`) -----------------
    # The activity service records a batch of a tenant's events in ONE Lua call, so all
    # of a tenant's activity keys share the tag (see services/activity/recorder.py for
    # why). The scripts get the fixed keys built here in KEYS; the families RECORD makes
    # inside the call (per user, room, connection, minute, hour) are spelled again in
    # services/activity/activity_keys.lua, and a unit test holds the two equal.
    def activity_tag(self, tenant: str) -> str:
        return f"{self.prefix}:{{a/{tenant}}}"

    def activity(self, tenant: str, part: str, *names: str | int) -> str:
        """Key `part` (a name in ACTIVITY_PARTS) of a tenant: `activity(t, "user_history", u)`."""
        return self.activity_tag(tenant) + ACTIVITY_PARTS[part] + ":".join(map(str, names))

    def activity_tenants(self) -> str:
        """Set of tenants with activity (the jobs walk it)."""
        return f"{self.prefix}:act:tenants"

    # --- services ----------------------------------------------------------------
    def event_partition(self, index: int) -> str:
        """One partition of the gateway's connection events (connect, join, leave, status,
        disconnect: presence, sessions and activity read them all;
        goldwire.protocol.partitions says which event goes where). Each
        has its own hash tag, so a cluster spreads them over its masters."""
        return f"{self.prefix}:{{ev/{index}}}"

    def event_partitions(self, count: int) -> list[str]:
        return [self.event_partition(i) for i in range(count)]

    def activity_event_partition(self, index: int) -> str:
        """One partition of the events only activity reads (publish, send, api,
        session_state; goldwire.protocol.partitions), so presence and sessions never
        read the messages."""
        return f"{self.prefix}:{{ea/{index}}}"

    def activity_event_partitions(self, count: int) -> list[str]:
        return [self.activity_event_partition(i) for i in range(count)]

    def event_partition_count(self) -> str:
        """String: how many partitions this deployment's event stream has (set by the
        first process to start; goldwire.store.partitions)."""
        return f"{self.prefix}:events:partitions"

    def legacy_events(self) -> str:
        """The one event stream of releases before partitions: still read while it
        exists, so events an old gateway wrote during a rolling upgrade are not lost."""
        return f"{self.prefix}:events"

    def consumer_group(self, service: str) -> str:
        return f"{self.prefix}:{service}"

    def dead_letters(self) -> str:
        """Stream of the event records a service failed on (`dead_group` says which),
        set aside so the rest of the stream goes on; capped, for an operator to read."""
        return f"{self.prefix}:events:dead"


# Activity key parts: `<prefix>:{a/<tenant>}` + part + names joined by `:`. Time buckets
# are UTC minute / hour / day numbers since the epoch (ts // 60_000, 3_600_000, 86_400_000).
# A name always comes last, after a fixed part, so user and room names cannot collide.
ACTIVITY_PARTS: dict[str, str] = {
    # history: sorted sets, score = event ts (ms), member = the entry (see activity/events.py)
    "user_history": ":hu:",  # + user
    "room_history": ":hr:",  # + room
    "api_history": ":hx",  # API use with neither user nor room (sends, broadcasts)
    "last_active": ":la",  # zset user -> last event ts (also the index the trim walks)
    "room_index": ":lr",  # zset room -> last event ts
    # per-user summaries
    "user_day": ":ud:",  # + day:user -> hash em (events + 2^24 * messages), j:<room>, t:<room>
    # + conn -> hash room -> O|seq|ts (in since ts), L|seq|ts (left), D|seq|ts (closed by
    # the disconnect), and ~gone -> seq|ts of the disconnect (then kept a tombstone TTL)
    "conn_rooms": ":cr:",
    # counters: minute hashes (kept 2 days), folded into hour and day roll-ups
    "minute": ":m:",  # + minute -> hash k:<kind>, t:<type>, r:<room>, a:<api use> -> count
    "minute_folded": ":mf:",  # + minute -> what the roll-up already added (expires with it)
    "dirty_minutes": ":dm",  # zset minute -> version: minutes with counts not yet rolled up
    "hour": ":h:",  # + hour -> hash (fields as minute, without r:)
    "day": ":d:",  # + day
    "rooms_hour": ":rh:",  # + hour -> zset room -> messages
    "rooms_day": ":rd:",  # + day
    "users_hour": ":ah:",  # + hour -> set of active users (exact, until the limit)
    "users_hour_hll": ":ahx:",  # + hour -> HyperLogLog of active users (always)
    "users_day": ":ad:",  # + day (rolled up from hours)
    "users_day_hll": ":adx:",  # + day
    "users_overflow": ":ao",  # hash h<hour> / d<day> -> 1: exact set dropped, HLL only
    "dirty_days": ":dd",  # zset day -> version: days whose user roll-up is due
    # live state (from the events, order-independent by per-connection seq)
    "live_conns": ":lc",  # hash conn -> user\tnode
    "live_members": ":lm",  # hash <room>\t<user> -> connections of user in room
    "live_rooms": ":lrm",  # hash room -> members (distinct users)
    "live_users": ":lu",  # hash user -> connections
    "live_nodes": ":ln",  # hash node -> connections
    "live_seconds": ":ls",  # hash second -> messages (trimmed to the last minutes)
}
