"""Sharded pub/sub on a Redis Cluster: one connection per master that owns a channel.

On a cluster, rooms, users and tenants are published with SPUBLISH, which only the
shard owning the channel's slot delivers (PUBLISH would cross the cluster bus to
every node). So a gateway holds one pub/sub connection per master it needs and
sends each SSUBSCRIBE to the master of its channel's slot. redis-py 5's asyncio
cluster client has no pub/sub at all, hence this module.

Whatever breaks the feed of any shard — its connection lost (a master killed, a
network cut), a subscription refused (MOVED after a failover or a slot
migration, CLUSTERDOWN, LOADING), Redis unsubscribing a channel whose slot moved
(`sunsubscribe`) — calls `on_lost` once and starts one repair: read the slot map
again, open the connections the channels now need, subscribe every channel
where it now lives, then `on_restored`, which runs the gateway's catch-up
(rooms whose history proves complete replay; others are told `resync`).
Repairs retry with backoff until the cluster answers. A `subscribe` made while a
repair runs waits for it, up to its timeout: the repair subscribes every channel
in `channels`, so the new one too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection
from redis.exceptions import RedisError

log = logging.getLogger("goldwire.gateway.shard_feed")

CONFIRM_TIMEOUT = 5.0
_NOT_FOR_A_CONNECTION = ("max_connections", "response_callbacks", "connection_class")


class FeedBroken(Exception):
    """A shard's connection failed or Redis refused one of its subscriptions."""


class _Shard:
    """One master's pub/sub connection and the channels subscribed on it."""

    def __init__(self, name: str, connection: Connection, feed: ShardFeed) -> None:
        self.name = name
        self.connection = connection
        self.feed = feed
        self.channels: set[bytes] = set()
        self._confirmations: dict[bytes, list[asyncio.Future[None]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self.connection.connect()
        self._reader = asyncio.create_task(self._read_loop(), name=f"shard-feed-{self.name}")

    async def subscribe(self, channels: list[bytes]) -> None:
        """SSUBSCRIBE and wait for every confirmation."""
        loop = asyncio.get_running_loop()
        waiting = []
        for channel in channels:
            fut: asyncio.Future[None] = loop.create_future()
            self._confirmations.setdefault(channel, []).append(fut)
            waiting.append(fut)
        self.channels.update(channels)
        try:
            # One command per channel, all sent at once: SSUBSCRIBE takes several channels
            # only when they share one slot.
            await self.connection.send_packed_command(
                self.connection.pack_commands([("SSUBSCRIBE", c) for c in channels]))
            await asyncio.wait_for(asyncio.gather(*(asyncio.shield(f) for f in waiting)),
                                   CONFIRM_TIMEOUT)
        except (RedisError, OSError) as exc:
            raise FeedBroken(str(exc)) from exc

    async def unsubscribe(self, channel: bytes) -> None:
        self.channels.discard(channel)
        with contextlib.suppress(RedisError, OSError):
            await self.connection.send_command("SUNSUBSCRIBE", channel)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        self._fail_waiting(FeedBroken("closed"))
        with contextlib.suppress(Exception):
            await self.connection.disconnect()

    def _fail_waiting(self, exc: Exception) -> None:
        for futures in self._confirmations.values():
            for fut in futures:
                if not fut.done():
                    fut.set_exception(exc)
                    fut.exception()  # retrieved: a repair resubscribes the channel anyway
        self._confirmations.clear()

    async def _read_loop(self) -> None:
        try:
            while True:
                reply = await self.connection.read_response(timeout=None)
                self._dispatch(reply)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # lost, or a subscription refused (MOVED, CLUSTERDOWN...)
            self._fail_waiting(FeedBroken(str(exc)))
            self.feed.broken(self, exc)

    def _dispatch(self, reply: Any) -> None:
        kind = reply[0]
        if kind == b"smessage":
            self.feed.on_message(reply[1], reply[2])
        elif kind == b"ssubscribe":
            for fut in self._confirmations.pop(reply[1], ()):
                if not fut.done():
                    fut.set_result(None)
        elif kind == b"sunsubscribe" and reply[1] in self.channels:
            # Redis drops a channel whose slot moved to another shard: home it again.
            self.feed.broken(self, FeedBroken(f"{reply[1]!r} unsubscribed by Redis"))


class ShardFeed:
    """The sharded subscriptions of one gateway (see the module docstring)."""

    def __init__(self, cluster: RedisCluster, on_message: Callable[[bytes, bytes], None],
                 on_lost: Callable[[], None], on_restored: Callable[[], None]) -> None:
        self.cluster = cluster
        self.on_message = on_message
        self._on_lost = on_lost
        self._on_restored = on_restored
        self.channels: set[bytes] = set()
        self._shards: dict[str, _Shard] = {}
        self._home: dict[bytes, _Shard] = {}
        self._repair: asyncio.Task[None] | None = None
        self._opening: dict[str, asyncio.Future[_Shard]] = {}
        self.repairs = 0
        self._closing: set[asyncio.Future[None]] = set()

    @property
    def healthy(self) -> bool:
        return self._repair is None

    @property
    def shard_count(self) -> int:
        return len(self._shards)

    async def subscribe(self, channel: bytes) -> None:
        self.channels.add(channel)
        if self._repair is not None:
            await asyncio.wait_for(asyncio.shield(self._repair), CONFIRM_TIMEOUT)
            return
        try:
            shard = await self._shard_for(channel)
            self._home[channel] = shard
            await shard.subscribe([channel])
        except (FeedBroken, RedisError, OSError) as exc:
            self._start_repair(exc)
            await asyncio.wait_for(asyncio.shield(self._repair), CONFIRM_TIMEOUT)  # type: ignore[arg-type]

    async def unsubscribe(self, channel: bytes) -> None:
        self.channels.discard(channel)
        shard = self._home.pop(channel, None)
        if shard is not None:
            await shard.unsubscribe(channel)

    async def close(self) -> None:
        if self._repair is not None:
            self._repair.cancel()
            await asyncio.gather(self._repair, return_exceptions=True)
        await asyncio.gather(*(s.close() for s in self._shards.values()))
        self._shards.clear()
        self._home.clear()

    def broken(self, shard: _Shard, exc: BaseException) -> None:
        """A shard's feed failed: repair the whole feed once (called by the shard)."""
        if self._shards.get(shard.name) is shard:
            del self._shards[shard.name]
            closing = asyncio.ensure_future(shard.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        self._start_repair(exc)

    # --- internals -----------------------------------------------------------------
    def _start_repair(self, exc: BaseException) -> None:
        if self._repair is not None:
            return
        log.warning("sharded pub/sub broken (%s); repairing", exc)
        self._on_lost()
        self._repair = asyncio.create_task(self._repair_loop(), name="shard-feed-repair")

    async def _repair_loop(self) -> None:
        delay = 0.05
        while True:
            try:
                await self._resubscribe_all()
                break
            except Exception as exc:  # RedisClusterException too: not a RedisError
                log.warning("sharded pub/sub repair failed (%r); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        self.repairs += 1
        self._repair = None
        log.info("sharded pub/sub repaired: %d channels on %d masters",
                 len(self.channels), len(self._shards))
        self._on_restored()

    async def _resubscribe_all(self) -> None:
        """Read the slot map, then subscribe every channel on the master that owns it."""
        await asyncio.gather(*(s.close() for s in self._shards.values()))
        self._shards.clear()
        self._home.clear()
        await self.cluster.nodes_manager.initialize()
        by_shard: dict[str, list[bytes]] = {}
        for channel in self.channels:
            by_shard.setdefault(self._master_of(channel), []).append(channel)
        for name, channels in by_shard.items():
            shard = await self._open(name)
            for channel in channels:
                self._home[channel] = shard
            for i in range(0, len(channels), 500):
                await shard.subscribe(channels[i:i + 500])

    def _master_of(self, channel: bytes) -> str:
        node = self.cluster.nodes_manager.get_node_from_slot(self.cluster.keyslot(channel))
        return node.name

    async def _shard_for(self, channel: bytes) -> _Shard:
        if not self.cluster.nodes_manager.slots_cache:
            await self.cluster.initialize()
        return await self._open(self._master_of(channel))

    async def _open(self, name: str) -> _Shard:
        shard = self._shards.get(name)
        if shard is not None:
            return shard
        opening = self._opening.get(name)
        if opening is not None:
            return await asyncio.shield(opening)
        fut: asyncio.Future[_Shard] = asyncio.get_running_loop().create_future()
        self._opening[name] = fut
        try:
            host, port = name.rsplit(":", 1)
            shard = _Shard(name, self._connection(host, int(port)), self)
            await shard.open()
            self._shards[name] = shard
            fut.set_result(shard)
            return shard
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()
            raise
        finally:
            del self._opening[name]

    def _connection(self, host: str, port: int) -> Connection:
        options = {k: v for k, v in self.cluster.nodes_manager.connection_kwargs.items()
                   if k not in _NOT_FOR_A_CONNECTION}
        options.update(host=host, port=port, socket_timeout=None, socket_keepalive=True,
                       health_check_interval=0)
        return Connection(**options)
