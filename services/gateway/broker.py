"""The gateway's Redis: the publish path, history reads, and the node's pub/sub feed.

The node subscribes only to the channels of the rooms, users and tenants it
holds locally. `subscribe` returns once Redis has confirmed the subscription,
which is what makes join-with-recovery gap-free: anything published after
the confirmation arrives live, anything before is in the history read that
follows it.

When the pub/sub connection drops (Redis restarted, network cut), the reader
reconnects with backoff, resubscribes every channel, and calls `on_reconnect`
so the rooms can fetch what was published during the gap.

On a Redis Cluster the node's own channel stays on that classic connection (to
any node: PUBLISH reaches every node), and rooms, users and tenants go to the
sharded feed (`shard_feed`): one connection per master that owns one of them.
Either feed breaking makes `connected` false and runs the same catch-up when it
heals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from goldwire.gateway.settings import GatewaySettings
from goldwire.gateway.shard_feed import ShardFeed
from goldwire.protocol.keys import Keys
from goldwire.service import redis_from_url
from goldwire.store.connect import sharded
from goldwire.store.direct import DirectStore
from goldwire.store.presence_view import PresenceView
from goldwire.store.rooms import RoomHistory, RoomStore

__all__ = ["NETWORK_ERRORS", "PubSubTarget", "RedisBroker", "RoomHistory"]

log = logging.getLogger("goldwire.gateway.broker")

NETWORK_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)


class PubSubTarget(Protocol):
    def on_pubsub(self, data: bytes) -> None: ...


class RedisBroker:
    def __init__(
        self,
        settings: GatewaySettings,
        keys: Keys,
        on_reconnect: Callable[[], Coroutine[Any, Any, None]],
        on_disconnect: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.redis = redis_from_url(
            settings.redis_url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
        )
        # The pub/sub connection blocks on reads for as long as the node lives.
        self._sub_redis = self._classic_client(settings.redis_url)
        self.shards: ShardFeed | None = None
        if sharded(self.redis):
            self.shards = ShardFeed(self.redis, self._on_shard_message, self._on_shards_lost,
                                    self._on_shards_restored)
        self._classic_connected = False
        self._pubsub: Any = None
        self._targets: dict[bytes, PubSubTarget] = {}
        self._confirmations: dict[bytes, list[asyncio.Future[None]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._catch_up: asyncio.Task[None] | None = None
        self._on_reconnect = on_reconnect
        self._on_disconnect = on_disconnect
        self.room_store = RoomStore(self.redis, keys, settings.history_size,
                                    settings.history_ttl, settings.idempotency_window,
                                    settings.room_policy())
        self.direct = DirectStore(self.redis, keys, settings.idempotency_window)
        self.presence_view = PresenceView(self.redis, keys)

    @property
    def connected(self) -> bool:
        """Whether every feed this node needs is subscribed."""
        return self._classic_connected and (self.shards is None or self.shards.healthy)

    @staticmethod
    def _classic_client(url: str) -> Redis:
        # A plain client even on a cluster: classic pub/sub works on any one node.
        return Redis.from_url(url, socket_timeout=None, socket_connect_timeout=5,
                              socket_keepalive=True)

    # --- lifecycle -----------------------------------------------------------
    async def start(self, first_channel: bytes, target: PubSubTarget) -> None:
        self._targets[first_channel] = target
        self._pubsub = self._sub_redis.pubsub(ignore_subscribe_messages=False)
        await self._pubsub.subscribe(first_channel)
        self._classic_connected = True
        self._reader = asyncio.create_task(self._read_loop(), name="pubsub-reader")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self.shards is not None:
            await self.shards.close()
        if self._pubsub is not None:
            await self._pubsub.aclose()
        await self._sub_redis.aclose()
        await self.redis.aclose()

    # --- subscriptions -----------------------------------------------------------
    async def subscribe(self, channel: bytes, target: PubSubTarget) -> None:
        """Subscribe and wait for Redis's confirmation."""
        self._targets[channel] = target
        if self.shards is not None:
            await self.shards.subscribe(channel)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirmations.setdefault(channel, []).append(fut)
        try:
            await self._pubsub.subscribe(channel)
            await asyncio.wait_for(asyncio.shield(fut), timeout=5)
        except BaseException:
            waiting = self._confirmations.get(channel)
            if waiting and fut in waiting:
                waiting.remove(fut)
            raise

    async def unsubscribe(self, channel: bytes) -> None:
        self._targets.pop(channel, None)
        if self.shards is not None:
            await self.shards.unsubscribe(channel)
            return
        try:
            await self._pubsub.unsubscribe(channel)
        except NETWORK_ERRORS:
            pass  # the resubscription after reconnect skips it

    def _dispatch(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        channel = msg["channel"]
        if kind == b"message" or kind == "message":
            target = self._targets.get(channel)
            if target is not None:
                target.on_pubsub(msg["data"])
        elif kind in ("subscribe", b"subscribe"):
            for fut in self._confirmations.pop(channel, ()):
                if not fut.done():
                    fut.set_result(None)

    def _on_shard_message(self, channel: bytes, data: bytes) -> None:
        target = self._targets.get(channel)
        if target is not None:
            try:
                target.on_pubsub(data)
            except Exception:  # a bug in one target must not stop the node's feed
                log.exception("pub/sub dispatch failed")

    def _on_shards_lost(self) -> None:
        if self._classic_connected:  # else the classic feed already said so
            self._on_disconnect()

    def _on_shards_restored(self) -> None:
        if self._classic_connected:  # else its own reconnect runs the catch-up
            self._catch_up = asyncio.create_task(self._on_reconnect(), name="pubsub-catch-up")

    async def _read_loop(self) -> None:
        delay = 0.05
        while True:
            if not self._classic_connected:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                await self._resubscribe()
                continue
            try:
                msg = await self._pubsub.get_message(timeout=None)
            except NETWORK_ERRORS as exc:
                was_connected = self.connected
                self._classic_connected = False
                log.warning("pub/sub connection lost (%s); reconnecting", exc)
                if was_connected:
                    self._on_disconnect()
                continue
            delay = 0.05
            if msg is None:
                continue
            try:
                self._dispatch(msg)
            except Exception:  # a bug in one target must not stop the node's feed
                log.exception("pub/sub dispatch failed")

    async def _resubscribe(self) -> None:
        try:
            await self._pubsub.aclose()
        except Exception:
            pass
        self._pubsub = self._sub_redis.pubsub(ignore_subscribe_messages=False)
        classic = [c for c in self._targets if self.shards is None or c not in self.shards.channels]
        try:
            await self._pubsub.subscribe(*classic)
        except NETWORK_ERRORS:
            await self._next_classic_node()
            return  # the read loop retries with backoff
        self._classic_connected = True
        if self.shards is not None and not self.shards.healthy:
            return  # the shards' repair runs the catch-up when it is done
        self._catch_up = asyncio.create_task(self._on_reconnect(), name="pubsub-catch-up")

    async def _next_classic_node(self) -> None:
        """On a cluster, the node we listened on may be gone for good: try another."""
        if self.shards is None:
            return
        nodes = list(self.redis.nodes_manager.nodes_cache.values())
        if not nodes:
            return
        old = self._sub_redis
        node = random.choice(nodes)
        self._sub_redis = self._classic_client(f"redis://{node.host}:{node.port}")
        self._sub_redis.connection_pool.connection_kwargs.update(
            {k: v for k, v in old.connection_pool.connection_kwargs.items()
             if k in ("username", "password")})
        with contextlib.suppress(Exception):
            await old.aclose()

    # --- room and direct messages: goldwire.store, shared with the Redis publisher ---
    async def publish_room(
        self, tenant: str, room: str, head: bytes, tail: bytes, idempotency_key: str | None
    ) -> tuple[str, bool]:
        """Append + publish one room message atomically; returns (offset, was_duplicate)."""
        return await self.room_store.publish(tenant, room, head, tail, idempotency_key)

    async def read_room(self, tenant: str, room: str, since: str | None) -> RoomHistory:
        """Latest offset and, for `since`, the provable entries after it."""
        return await self.room_store.read(tenant, room, since)

    async def recent_room(self, tenant: str, room: str, limit: int) -> tuple[str, list[bytes]]:
        """The latest offset and up to `limit` newest messages, oldest first."""
        return await self.room_store.recent(tenant, room, limit)

    async def read_presence(self, tenant: str, room: str) -> tuple[int, list[bytes]]:
        """A room's presence members at its published version (goldwire.store.presence_view)."""
        return await self.presence_view.read(tenant, room)

    async def publish_direct(self, channel: str, frame: bytes,
                             idempotency_key: str | None) -> tuple[int, bytes | None]:
        """PUBLISH, or claim-then-PUBLISH atomically under an idempotency key.

        Returns (subscribers reached, None), or (0, stored result) for a duplicate.
        """
        return await self.direct.publish(channel, frame, idempotency_key)

    async def remember_result(self, idempotency_key: str | None, result: dict[str, Any]) -> None:
        await self.direct.remember_result(idempotency_key, result)
