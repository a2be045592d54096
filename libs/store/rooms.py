"""Room history and live publish: the one path of every room message.

A gateway (client and HTTP publishes), the Redis publisher (backends publishing
straight to Redis) and the activity service (its stats room) all publish here,
so offsets, stored history, trimming, recovery and idempotency records are the
same whoever publishes; a gateway cannot tell them apart.
"""

from __future__ import annotations

from typing import Any

from goldwire.protocol.frames import build_frame
from goldwire.protocol.keys import Keys
from goldwire.protocol.room_options import RoomPolicy
from goldwire.store.connect import REPLICA_WAIT_MS, replicated_master
from goldwire.store.lua import bind, run_loading_scripts


class RoomHistory:
    """What `read` found: the latest offset and, when provable, the entries after `since`."""

    __slots__ = ("entries", "known_from", "latest", "recovered")

    def __init__(self, latest: bytes, recovered: bool, entries: list[tuple[bytes, bytes]],
                 known_from: bytes = b"") -> None:
        self.latest = latest
        self.recovered = recovered
        self.entries = entries  # (offset, frame) in order
        self.known_from = known_from  # this Redis holds the room's history since then

    def resume_offset(self) -> str:
        """The offset to resume from later: the latest, or for a room with no history
        (which clients see as 0-0) the provable "complete since" marker."""
        if self.latest == b"0-0" and self.known_from:
            return self.known_from.decode()
        return self.latest.decode()


class RoomStore:
    """Publish to and read rooms' history with one deployment's history settings."""

    def __init__(self, redis: Any, keys: Keys, history_size: int, history_ttl: int,
                 idempotency_window: int, policy: RoomPolicy | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.history_size = history_size
        self.policy = policy or RoomPolicy()  # ROOM_OPTIONS: a pattern's history_size
        self.history_ttl_ms = history_ttl * 1000
        self.idempotency_ms = idempotency_window * 1000
        self._publish = bind(redis, __package__, "room_publish.lua")
        self._read = bind(redis, __package__, "room_read.lua")

    async def publish(self, tenant: str, room: str, head: bytes, tail: bytes,
                      idempotency_key: str | None, *, history_size: int | None = None,
                      history_ttl_ms: int | None = None) -> tuple[str, bool]:
        """Append + publish one room message atomically; returns (offset, was_duplicate).
        `head` and `tail` come from goldwire.protocol.frames.room_frame_parts."""
        keys = self.keys
        meta = keys.room_meta(tenant, room)
        history = keys.history(tenant, room)
        named = dict(
            history=history, meta=meta,
            idempotency=(keys.room_idempotency(tenant, room, idempotency_key)
                         if idempotency_key else meta),
            channel=keys.room_channel(tenant, room), head=head, tail=tail,
            maxlen=(history_size if history_size is not None
                    else self.policy.for_room(room).history_size or self.history_size),
            ttl_ms=self.history_ttl_ms if history_ttl_ms is None else history_ttl_ms,
            idempotency_ms=str(self.idempotency_ms) if idempotency_key else "0")
        master = replicated_master(self.redis, history)
        if master is None:
            offset, dup = await self._publish(**named)
            return offset.decode(), bool(dup)

        async def publish_and_wait() -> list[Any]:
            # One connection to the room's master: the script, then WAIT for its replica,
            # so what a client is told was published survives the master's failover.
            pipe = self.redis.pipeline()
            self._publish.queue(pipe, **named)
            pipe.execute_command("WAIT", 1, REPLICA_WAIT_MS, target_nodes=master)
            return await pipe.execute()

        (offset, dup), _ = await run_loading_scripts(self.redis, (self._publish,),
                                                     publish_and_wait)
        return offset.decode(), bool(dup)

    async def read(self, tenant: str, room: str, since: str | None) -> RoomHistory:
        """Latest offset and, for `since`, the provable entries after it."""
        res = await self._read(history=self.keys.history(tenant, room),
                               meta=self.keys.room_meta(tenant, room),
                               since=since or "", ttl_ms=self.history_ttl_ms)
        latest, recovered = res[0], bool(res[1])
        entries = []
        if recovered:
            for offset, fields in res[2]:
                f = dict(zip(fields[::2], fields[1::2], strict=True))
                entries.append((offset, build_frame(f[b"h"], offset, f[b"t"])))
        return RoomHistory(latest, recovered, entries, res[3] or b"")

    async def recent(self, tenant: str, room: str, limit: int) -> tuple[str, list[bytes]]:
        """The latest offset and up to `limit` newest messages, oldest first."""
        entries = await self.redis.xrevrange(self.keys.history(tenant, room), count=limit)
        frames = [build_frame(f[b"h"], offset, f[b"t"]) for offset, f in entries if b"h" in f]
        latest = entries[0][0].decode() if entries else "0-0"
        return latest, frames[::-1]
