"""The gateway node: the composition root that wires settings, Redis, groups and sockets.

It owns the node-wide loops (heartbeat, liveness key, idle-subscription sweep)
and the operations that are the same for a socket command and an HTTP call:
publish to a room, send to a user, broadcast to a tenant.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from goldwire.gateway import admin
from goldwire.gateway.auth import TokenVerifier
from goldwire.gateway.authz import RoomAuthorizer
from goldwire.gateway.broker import RedisBroker
from goldwire.gateway.clientip import ClientAddress, parse_networks
from goldwire.gateway.conn_index import ConnectionIndex
from goldwire.gateway.groups import GroupTable, LocalGroup
from goldwire.gateway.metrics import GatewayMetrics
from goldwire.gateway.outbox import Outbox
from goldwire.gateway.ratelimit import RedisRateLimiter
from goldwire.gateway.rooms import LocalRoom, RoomHub
from goldwire.gateway.settings import GatewaySettings
from goldwire.gateway.slots import SlotsRefused, UserSlots
from goldwire.protocol.channels import (
    AdminCommand,
    ChannelMessageError,
    CloseConnection,
    StatesReady,
    format_admin,
    parse_node,
)
from goldwire.protocol.codes import CloseCode
from goldwire.protocol.errors import GoldwireError
from goldwire.protocol.frames import room_frame_parts
from goldwire.protocol.keys import Keys
from goldwire.protocol.messages import direct_frame
from goldwire.protocol.offsets import format_offset
from goldwire.protocol.partitions import EventStreams
from goldwire.store.direct import DirectStore
from goldwire.store.inbox import Inbox
from goldwire.store.partitions import default_partitions, event_streams
from goldwire.store.sessions import SessionStore

if TYPE_CHECKING:
    from goldwire.gateway.connection import Connection

log = logging.getLogger("goldwire.gateway")

SWEEP_INTERVAL = 2.0
LAG_PROBE_INTERVAL = 0.02  # seconds between event-loop lag probes
EPOCH_TTL = 7 * 86400  # seconds; refreshed with the liveness key


class PublishTooLarge(GoldwireError):
    """A message over MAX_PUBLISH_BYTES: `too_large` on a socket, 413 over HTTP."""


class NodeControl:
    """The node's own channel: other processes ask it to close connections, and the
    admin API sends it operators' commands (admin.py)."""

    def __init__(self, node: GatewayNode) -> None:
        self.node = node

    def on_pubsub(self, data: bytes) -> None:
        try:
            message = parse_node(data)
        except ChannelMessageError as exc:
            log.warning("node channel: dropped a message: %s", exc)
            return
        if isinstance(message, StatesReady):
            self._states_ready(message)
        elif isinstance(message, CloseConnection):
            conn = self.node.connections.get(message.conn)
            if conn is not None:
                conn.close(message.code, message.reason)
        else:
            admin.apply(self.node, message)

    def _states_ready(self, message: StatesReady) -> None:
        """Presence announced these joiners' state: read it once per room for them all."""
        by_room: dict[LocalRoom, list[Any]] = {}
        for conn_id in message.conns:
            conn = self.node.connections.get(conn_id)
            room = conn.rooms.get(message.room) if conn is not None else None
            if room is not None and conn is not None:
                by_room.setdefault(room, []).append(conn.transport)
        for room, transports in by_room.items():
            self.node.rooms.presence_state_ready(room, transports)


class GatewayNode:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.node_id = settings.node_id
        self.keys = Keys(settings.key_prefix)
        self.metrics = GatewayMetrics()
        self.verifier = TokenVerifier(settings)
        self.authorizer = RoomAuthorizer(settings)
        self.broker = RedisBroker(settings, self.keys, on_reconnect=self._after_reconnect,
                                  on_disconnect=self._on_feed_lost)
        self.groups = GroupTable(self.broker)
        self.rooms = RoomHub(self.groups, self.broker, self.keys, self.metrics,
                             settings.room_policy())
        # what this process would propose; start() takes the deployment's
        self.event_streams = EventStreams(self.keys, settings.event_partitions
                                          or default_partitions(self.broker.redis))
        self.outbox = Outbox(self.broker.redis, self.event_streams, self.node_id,
                             settings.events_maxlen, self.metrics)
        self.sessions = SessionStore(self.broker.redis, self.keys, settings.session_timeout_hours)
        self.inbox = Inbox(self.broker.redis, self.keys, settings.notifications_max,
                           settings.notifications_retention_days, settings.idempotency_window)
        self.slots = UserSlots(self.broker.redis, self.node_id,
                               settings.max_connections_per_user, settings.user_nodes_ttl)
        self.index = ConnectionIndex(self.keys, self.node_id, self.slots.ttl_ms,
                                     self.outbox.command)
        self.client_address = ClientAddress(parse_networks(settings.trusted_proxies))
        self.connect_limiter = RedisRateLimiter(self.broker.redis, settings.connect_rate_per_ip,
                                                settings.connect_rate_burst)
        self.publish_limiter = RedisRateLimiter(self.broker.redis,
                                                settings.publish_rate_per_tenant,
                                                settings.publish_rate_burst)
        # (tenant, user) → this node's connections holding a slot: what its field says.
        self.user_counts: dict[tuple[str, str], int] = {}
        self.connections: dict[str, Connection] = {}
        self.live_nodes: set[str] = {self.node_id}
        self._conn_counter = 0
        self._started_ms = int(time.time() * 1000)
        self._liveness_set = False
        self._tasks: list[asyncio.Task[None]] = []
        self.metrics.gauge("connections", lambda: len(self.connections),
                           "Open client connections on this node")
        self.metrics.gauge("rooms", lambda: len(self.rooms.rooms()),
                           "Rooms with members on this node")
        self.metrics.gauge("subscriptions", lambda: len(self.groups.groups),
                           "Redis pub/sub channels this node holds (rooms, users, tenants)")

    # --- lifecycle ---------------------------------------------------------------
    async def start(self) -> None:
        await self.broker.start(self.keys.node_channel(self.node_id).encode(), NodeControl(self))
        self.event_streams = await event_streams(self.broker.redis, self.keys,
                                                 self.settings.event_partitions)
        self.outbox.use(self.event_streams)
        self.outbox.start()
        await self._refresh_liveness()
        for loop_fn in (self._heartbeat_loop, self._liveness_loop, self._sweep_loop,
                        self._lag_probe_loop, self._user_counts_loop):
            self._tasks.append(asyncio.create_task(loop_fn(), name=loop_fn.__name__))
        log.info("gateway node %s started", self.node_id)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.rooms.close()
        for conn in list(self.connections.values()):  # still open after the drain
            conn.transport.abort()
            conn.on_closed()
        self.outbox.command("DEL", self.keys.node_alive(self.node_id))
        self.outbox.command("DEL", self.keys.node_epoch(self.node_id))
        self.outbox.command("ZREM", self.keys.nodes(), self.node_id)
        await self.outbox.close()
        await self.authorizer.aclose()
        await self.broker.close()

    def new_connection_id(self) -> str:
        self._conn_counter += 1
        return f"{self.node_id}.{self._conn_counter}"

    # --- connections -----------------------------------------------------------------
    async def admit(self, conn: Connection, tenant: str, user: str) -> None:
        """Take one of the user's slots for `conn`, or raise SlotsRefused (nothing taken).

        Counted before the reply, so a `send` right after connect already sees it."""
        key = self.keys.user_nodes(tenant, user)
        status, total = await self.slots.reserve(key, self.live_nodes, final=False)
        if status < 0:  # a node we do not know: one newer than our last look, or a dead one
            await self._refresh_liveness()
            status, total = await self.slots.reserve(key, self.live_nodes, final=True)
        if status == 0:
            self.metrics.connections_refused_per_user += 1
            raise SlotsRefused(total, self.slots.limit)
        conn.counted = True
        self.user_counts[(tenant, user)] = self.user_counts.get((tenant, user), 0) + 1
        if conn.is_closed:  # it closed while we asked: give the slot back
            self.release(conn, tenant, user)

    def release(self, conn: Connection, tenant: str, user: str) -> None:
        if not conn.counted:
            return
        conn.counted = False
        left = self.user_counts.get((tenant, user), 0) - 1
        if left > 0:
            self.user_counts[(tenant, user)] = left
        else:
            self.user_counts.pop((tenant, user), None)
        self.outbox.command(*self.slots.release_command(self.keys.user_nodes(tenant, user)))

    async def attach(self, conn: Connection) -> None:
        """A connection authenticated: index it by user and tenant, report it."""
        p = conn.principal
        assert p is not None
        if conn.is_closed:  # closed while its session opened: detach already ran
            return
        self.connections[conn.id] = conn
        conn.connected_at = int(time.time() * 1000)
        self.index.put(conn)
        user, tenant = await asyncio.gather(
            self.groups.acquire(self._user_channel(p.tenant, p.user_id), self._group),
            self.groups.acquire(self._tenant_channel(p.tenant), self._group),
        )
        user.members.add(conn.transport)
        tenant.members.add(conn.transport)
        self.outbox.event("connect", conn, name=p.name, status=conn.status)

    def detach(self, conn: Connection, was_ready: bool) -> None:
        """A socket closed: leave its rooms and groups, report the disconnect."""
        self.connections.pop(conn.id, None)
        if conn.principal is not None:
            self.release(conn, conn.principal.tenant, conn.principal.user_id)
        if not was_ready or conn.principal is None:
            return
        p = conn.principal
        self.index.drop(conn)
        now = conn.now()
        for room in conn.rooms.values():
            self.rooms.leave(conn, room)
        for channel in (self._user_channel(p.tenant, p.user_id), self._tenant_channel(p.tenant)):
            group = self.groups.groups.get(channel)
            if group is not None:
                group.members.discard(conn.transport)
                self.groups.release(group, now)
        offsets = None
        if conn.transport.closed_cleanly():
            # The client read everything up to its close: the rooms' latest fanned-out
            # offsets are delivered. After an abort nothing is claimed (the session keeps
            # older offsets, so a resume replays more rather than misses any).
            offsets = {name: format_offset(room.last_offset)
                       for name, room in conn.rooms.items() if room.last_offset != (0, 0)}
        self.outbox.event("disconnect", conn, rooms=list(conn.rooms), offsets=offsets or None,
                          quiet_rooms=[n for n, r in conn.rooms.items() if not r.presence]
                          or None)

    def _recount_users(self) -> None:
        """After Redis lost its data: write every local user's count again."""
        for (tenant, user), count in self.user_counts.items():
            key = self.keys.user_nodes(tenant, user)
            self.outbox.command("HSET", key, self.node_id, count)
            self.outbox.command("PEXPIRE", key, self.slots.ttl_ms)
        for conn in list(self.connections.values()):
            if conn.principal is not None:
                self.index.put(conn)

    async def _user_counts_loop(self) -> None:
        """Keep the count hashes of users connected here from expiring (a dead node's
        own users' hashes then expire by themselves if no sweep cleans them)."""
        ttl_ms = self.slots.ttl_ms
        while True:
            await asyncio.sleep(ttl_ms / 1000 / 4)
            for tenant, user in list(self.user_counts):
                self.outbox.command("PEXPIRE", self.keys.user_nodes(tenant, user), ttl_ms)
                self.index.keep_alive(tenant, user)

    def _group(self, channel: bytes) -> LocalGroup:
        return LocalGroup(channel, self.metrics)

    def _user_channel(self, tenant: str, user: str) -> bytes:
        return self.keys.user_channel(tenant, user).encode()

    def _tenant_channel(self, tenant: str) -> bytes:
        return self.keys.tenant_channel(tenant).encode()

    # --- the operations shared by sockets and HTTP ---------------------------------------
    def check_size(self, size: int) -> None:
        """Refuse a message whose frame is over MAX_PUBLISH_BYTES (before it is stored)."""
        limit = self.settings.max_publish_bytes
        if size > limit:
            raise PublishTooLarge(f"message is {size} bytes; MAX_PUBLISH_BYTES is {limit}")

    async def publish_room(self, tenant: str, room: str, type_: str, data: dict[str, Any],
                           sender: dict[str, Any] | None = None,
                           idempotency_key: str | None = None) -> tuple[str, bool]:
        """The one path of every room message; returns (offset, was_duplicate)."""
        head, tail = room_frame_parts(type_, room, data, sender)
        self.check_size(len(head) + len(tail) + 40)  # + offset and ts
        self.metrics.publishes += 1
        self.metrics.publish("room", type_)
        return await self.broker.publish_room(tenant, room, head, tail, idempotency_key)

    async def send_to_user(self, tenant: str, user: str, type_: str, data: dict[str, Any],
                           sender: dict[str, Any] | None = None,
                           idempotency_key: str | None = None) -> tuple[int, bool]:
        """Deliver to every connection of `user`: (connections reached, was_duplicate).

        A `notification` is also kept in the user's inbox (same step as its push)."""
        idem = self.keys.idempotency(tenant, idempotency_key, user) if idempotency_key else None
        notification = None
        frame = direct_frame(type_, data, sender, int(time.time() * 1000))
        self.check_size(len(frame) + 40)  # a notification's frame also carries its id
        self.metrics.publish("user", type_)
        if type_ == "notification":
            nid, dup, _ = await self.inbox.notify(tenant, user, data, sender, idempotency_key)
            if dup:
                return self.inbox.first_delivery(nid), True
            notification, idem = nid, None  # the inbox holds the idempotency key
        else:
            _, stored = await self.broker.publish_direct(self.keys.user_channel(tenant, user),
                                                         frame, idem)
            if stored is not None:
                return int(json.loads(stored).get("delivered", 0)), True
        nodes = await self.broker.direct.user_node_counts(tenant, user)
        if not nodes.keys() <= self.live_nodes:  # a node newer than our last look, or a dead one
            await self._refresh_liveness()
        delivered = DirectStore.delivered(nodes, self.live_nodes)
        if notification is not None:
            await self.inbox.record_delivery(tenant, user, idempotency_key, notification,
                                                delivered)
        await self.broker.remember_result(idem, {"delivered": delivered})
        return delivered, False

    async def broadcast(self, tenant: str, type_: str, data: dict[str, Any],
                        sender: dict[str, Any] | None = None,
                        idempotency_key: str | None = None) -> tuple[int, bool]:
        """Deliver to every connection of `tenant`: (gateways reached, was_duplicate)."""
        idem = self.keys.idempotency(tenant, idempotency_key) if idempotency_key else None
        frame = direct_frame(type_, data, sender, int(time.time() * 1000))
        self.check_size(len(frame))
        self.metrics.publish("tenant", type_)
        reached, stored = await self.broker.publish_direct(self.keys.tenant_channel(tenant),
                                                           frame, idem)
        if stored is not None:
            return int(json.loads(stored).get("delivered", 0)), True
        await self.broker.remember_result(idem, {"delivered": reached})
        return reached, False

    async def admin_command(self, command: AdminCommand) -> int:
        """Send an operator's command to every live gateway (this one too); returns how
        many received it. Liveness is read first, so a gateway started a moment ago is
        not left out."""
        await self._refresh_liveness()
        data = format_admin(command)
        pipe = self.broker.redis.pipeline(transaction=False)
        for node_id in sorted(self.live_nodes):
            pipe.execute_command("PUBLISH", self.keys.node_channel(node_id), data)  # classic
        return sum(await pipe.execute())

    async def live_node_ids(self) -> set[str]:
        """The gateways alive now (read from Redis, not the last periodic look)."""
        await self._refresh_liveness()
        return set(self.live_nodes)

    # --- Redis gaps -------------------------------------------------------------------
    def _on_feed_lost(self) -> None:
        self.rooms.pause()

    async def _after_reconnect(self) -> None:
        self.metrics.pubsub_reconnects += 1
        # Liveness first: announced connections must never meet a sweep that finds no
        # liveness key for their node (after a Redis restart it is gone until we write it).
        try:
            await self._refresh_liveness()
        except Exception as exc:
            log.warning("liveness refresh after reconnect failed: %s", exc)
        self._recount_users()
        self._announce_connections()
        await self.rooms.catch_up()

    def _announce_connections(self) -> None:
        """After a Redis gap, say again who is here and where, so services that lost
        their state (a restart without persistence) rebuild it. Consumers treat a
        repeated connect or join as a no-op; `replay` marks them for analytics."""
        for conn in list(self.connections.values()):
            p = conn.principal
            if p is None:
                continue
            self.outbox.event("connect", conn, name=p.name, status=conn.status, meta=conn.meta,
                              replay=1)
            for name, room in conn.rooms.items():
                self.outbox.event("join", conn, room=name, name=p.name, replay=1,
                                  presence=None if room.presence else "off")

    # --- node-wide loops ---------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        """Ping every socket each interval; one that never answered the last ping is dead."""
        interval = self.settings.websocket_heartbeat_interval
        while True:
            await asyncio.sleep(interval)
            for conn in list(self.connections.values()):
                transport = conn.transport
                if transport.awaiting_pong:
                    self.metrics.heartbeat_timeouts += 1
                    transport.abort()
                else:
                    transport.ping()

    async def _liveness_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.node_ttl / 3)
            try:
                await self._refresh_liveness()
            except Exception as exc:
                log.warning("liveness refresh failed: %s", exc)

    async def _refresh_liveness(self) -> None:
        redis, keys = self.broker.redis, self.keys
        ttl_ms = int(self.settings.node_ttl * 1000)
        now_ms = int(time.time() * 1000)
        start = time.perf_counter()
        pipe = redis.pipeline(transaction=False)
        pipe.set(keys.node_alive(self.node_id), now_ms, px=ttl_ms, get=True)
        pipe.set(keys.node_epoch(self.node_id), self._started_ms, ex=EPOCH_TTL, get=True)
        pipe.zadd(keys.nodes(), {self.node_id: now_ms + ttl_ms})
        pipe.zremrangebyscore(keys.nodes(), "-inf", now_ms - 3_600_000)
        pipe.zrangebyscore(keys.nodes(), now_ms, "+inf")
        was_alive, had_epoch, *_, live = await pipe.execute()
        latency = time.perf_counter() - start
        self.metrics.redis_latency_seconds = latency
        self.metrics.redis_seconds.observe(latency)
        self.live_nodes = {n.decode() for n in live} | {self.node_id}
        if self._liveness_set and was_alive is None:
            if had_epoch is not None:
                self._presumed_dead()
            else:  # Redis lost its data (a flush, or a restart we did not see)
                self._recount_users()
                self._announce_connections()
        self._liveness_set = True

    def _presumed_dead(self) -> None:
        """Our liveness key lapsed (a long pause, or cut off from Redis) while Redis kept
        its data: the services have swept our connections and will ignore their ids from
        now on. The honest repair is to have every client reconnect (and recover)."""
        self.metrics.liveness_lapses += 1
        log.warning("liveness lapsed: closing %d connections with 4012", len(self.connections))
        for conn in list(self.connections.values()):
            conn.close(CloseCode.DRAINING, "gateway was presumed dead; reconnect")

    async def _lag_probe_loop(self) -> None:
        """Measure how late the loop wakes a timer: the delay CPU-bound work (a big
        fan-out, a GC pass, a starved CPU) adds to every socket of this process."""
        loop = asyncio.get_running_loop()
        metrics = self.metrics
        while True:
            start = loop.time()
            await asyncio.sleep(LAG_PROBE_INTERVAL)
            lag = max(0.0, loop.time() - start - LAG_PROBE_INTERVAL)
            metrics.event_loop_lag_seconds = lag
            metrics.event_loop_lag_max_seconds = max(metrics.event_loop_lag_max_seconds, lag)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                await self.groups.sweep(asyncio.get_running_loop().time())
            except Exception as exc:
                log.warning("subscription sweep failed: %s", exc)
