"""`RedisPublisher`: publish straight to Redis, exactly as a gateway would.

Room messages go through goldwire.store's `RoomStore`, the gateway's own
publish path, with the frame parts from `room_frame_parts`, so the offset, the
stored history, trimming, recovery and the idempotency record are those of a
gateway publish; a gateway cannot tell the two apart, and a key used over HTTP
and then here (or the other way round) is still delivered once.

User and broadcast messages are the frame the gateway's node builds, published
through the gateway's `DirectStore` (claim and PUBLISH in one script, the
result recorded in the gateway's format), and notifications through its
`Inbox`.

Like the gateway's HTTP API, each publish also adds a `publish` event to the
events stream for the activity service (best effort: a failure there is
logged, never raised, as the gateway's outbox also drops events it cannot write).
The events are written behind the publishes, pipelined (event_writer.py), so a
publish is one round trip; `aclose()` writes what is still queued.

Settings must match the gateway's (`GOLDWIRE_KEY_PREFIX`, history size and
TTL, idempotency window, `MAX_PUBLISH_BYTES`); the defaults are the gateway's
defaults. A message over `max_publish_bytes` is refused before anything is
written, as the gateway's 413: `PublishRejected(413, {"code": "too_large"})`,
and a batch with one such message is refused whole. Without it, one oversized
message would be stored in history and cut every member off with 4009, again
on every rejoin while it stays there.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from goldwire.client.backoff import ExponentialBackoff, with_retries
from goldwire.client.errors import PublishError, PublishRejected, PublishUnavailable
from goldwire.client.event_writer import EventWriter
from goldwire.client.publisher import BatchItem, Publisher, prepare
from goldwire.protocol.events import event_fields
from goldwire.protocol.frames import room_frame_parts
from goldwire.protocol.http import PublishRequest, PublishResult
from goldwire.protocol.keys import Keys
from goldwire.protocol.messages import direct_frame
from goldwire.protocol.partitions import EventStreams
from goldwire.protocol.room_options import RoomPolicy
from goldwire.store.connect import connect
from goldwire.store.direct import DirectStore
from goldwire.store.inbox import Inbox
from goldwire.store.partitions import default_partitions, recorded_partitions
from goldwire.store.rooms import RoomStore

log = logging.getLogger("goldwire.client.publisher")

# Worth retrying: the connection broke or timed out, or we hit a replica during a failover.
RETRYABLE = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError)

EVENTS_MAXLEN = 1_000_000  # the gateway's default `events_maxlen`
MAX_PUBLISH_BYTES = 65536  # the gateway's default `max_publish_bytes`
FRAME_EXTRA = 40  # what the gateway adds for the offset and ts (or a notification's id)

class RedisPublisher(Publisher):
    """Publishes to the Redis a gateway uses, with the gateway's keys and scripts."""

    def __init__(
        self,
        redis_url: str,
        key_prefix: str = "gw",
        history_size: int = 1000,
        history_ttl: int = 86400,
        idempotency_window: int = 300,
        retries: int = 3,
        backoff: ExponentialBackoff | None = None,
        record_events: bool = True,
        max_publish_bytes: int = MAX_PUBLISH_BYTES,
        room_options: str | None = None,
    ) -> None:
        self.keys = Keys(key_prefix)
        self.max_publish_bytes = max_publish_bytes
        self.history_size = history_size
        self.history_ttl = history_ttl
        self.idempotency_window = idempotency_window
        self.retries = retries
        self.backoff = backoff or ExponentialBackoff()
        self.record_events = record_events
        # Our own retries: redis-py's would not know that a retry is only safe with the key.
        self.redis = connect(redis_url, socket_timeout=5, socket_connect_timeout=5)
        # ROOM_OPTIONS as the gateways have it, so a pattern's history_size holds here too.
        self.rooms = RoomStore(self.redis, self.keys, history_size, history_ttl,
                               idempotency_window, RoomPolicy.parse(room_options))
        self.direct = DirectStore(self.redis, self.keys, idempotency_window)
        # Inbox bounds are the sessions service's settings; the defaults match the gateway's.
        self.inbox = Inbox(self.redis, self.keys, idempotency_window=idempotency_window)
        # Event ids must be unique across nodes, like the gateway's `<node>-<start ms>-<n>`.
        self.publisher_id = "pub-" + secrets.token_hex(4)
        self._event_prefix = f"{self.publisher_id}-{int(time.time() * 1000)}-"
        self._event_counter = 0
        self._partitions: int | None = None  # the deployment's, read at the first event
        self.events = EventWriter(self.redis, EVENTS_MAXLEN)

    async def _event_stream(self, kind: str, tenant: str, user: str | None) -> str:
        """The partition of the event stream this event goes to, by the deployment's
        count (goldwire.store.partitions; the default when no gateway recorded one)."""
        if self._partitions is None:
            recorded = await recorded_partitions(self.redis, self.keys)
            self._partitions = recorded or default_partitions(self.redis)
        return EventStreams(self.keys, self._partitions).stream_for(kind, tenant, user)

    async def publish(self, request: PublishRequest) -> PublishResult:
        req = prepare(request)
        parts = self._check_size(req)
        return await with_retries(lambda: self._attempt(req, parts), self.retries, self.backoff)

    async def publish_batch(self, items: Sequence[BatchItem]) -> list[PublishResult]:
        """One by one, in order, like the gateway's batch endpoint; each item retries alone.
        Every item's size is checked first, so a batch is refused whole or not at all."""
        requests = [prepare(item) for item in items]
        for req in requests:
            self._check_size(req)
        return [await self.publish(req) for req in requests]

    def _check_size(self, req: PublishRequest) -> tuple[bytes, bytes] | None:
        """The gateway's rule: the frame a socket would receive, over MAX_PUBLISH_BYTES.
        Returns a room message's frame parts (built once, published as they are)."""
        parts = None
        if req.room is not None:
            parts = room_frame_parts(req.type.value, req.room, req.data, req.from_)
            size = len(parts[0]) + len(parts[1]) + FRAME_EXTRA
        else:
            size = len(direct_frame(req.type.value, req.data, req.from_, 0)) + FRAME_EXTRA
        if size > self.max_publish_bytes:
            raise PublishRejected(413, {"code": "too_large", "message":
                                        f"message is {size} bytes; MAX_PUBLISH_BYTES is "
                                        f"{self.max_publish_bytes}"})
        return parts

    async def aclose(self) -> None:
        """Write the events still queued, then close the connections."""
        await self.events.drain()
        await self.redis.aclose()

    # --- one attempt -------------------------------------------------------------------
    async def _attempt(self, req: PublishRequest,
                       parts: tuple[bytes, bytes] | None) -> PublishResult:
        try:
            if req.room is not None:
                assert parts is not None
                return await self._room(req, parts)
            return await self._direct(req)
        except RETRYABLE as exc:
            raise PublishUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc
        except RedisError as exc:
            raise PublishError(f"redis refused the publish: {exc}") from exc

    async def _room(self, req: PublishRequest, parts: tuple[bytes, bytes]) -> PublishResult:
        assert req.room is not None and req.idempotency_key is not None
        tenant, room = req.tenant, req.room
        head, tail = parts
        offset, dup = await self.rooms.publish(tenant, room, head, tail, req.idempotency_key)
        result = PublishResult(offset=offset, duplicate=dup)
        if not result.duplicate:
            await self._event(tenant=tenant, room=room, type=req.type.value, offset=result.offset)
        return result

    async def _notify(self, req: PublishRequest) -> PublishResult:
        """A user's notification: kept in their inbox and pushed in one step, through the
        same store the gateway uses (so both backends share keys, ids and inbox)."""
        assert req.user is not None
        nid, dup, _ = await self.inbox.notify(req.tenant, req.user, req.data, req.from_,
                                              req.idempotency_key)
        if dup:
            return PublishResult(delivered=self.inbox.first_delivery(nid), duplicate=True)
        delivered = await self._user_connections(req)
        await self.inbox.record_delivery(req.tenant, req.user, req.idempotency_key, nid,
                                         delivered)
        await self._event(tenant=req.tenant, user=req.user, type=req.type.value)
        return PublishResult(delivered=delivered)

    async def _direct(self, req: PublishRequest) -> PublishResult:
        assert req.idempotency_key is not None
        if req.user is not None and req.type.value == "notification":
            return await self._notify(req)
        keys, tenant = self.keys, req.tenant
        channel = (keys.user_channel(tenant, req.user) if req.user is not None
                   else keys.tenant_channel(tenant))
        idem = keys.idempotency(tenant, req.idempotency_key, req.user)
        frame = direct_frame(req.type.value, req.data, req.from_, int(time.time() * 1000))
        reached, stored = await self.direct.publish(channel, frame, idem)
        if stored is not None:
            return PublishResult(**json.loads(stored or b"{}"), duplicate=True)
        delivered = reached if req.user is None else await self._user_connections(req)
        result = PublishResult(delivered=delivered)
        try:  # the gateway's format; if this fails the key keeps `{}`, still "delivered"
            await self.direct.remember_result(idem, {"delivered": delivered})
        except RedisError as exc:
            log.warning("could not record the result of idempotency key %s: %s", idem, exc)
        await self._event(tenant=tenant, user=req.user, type=req.type.value)
        return result

    async def _user_connections(self, req: PublishRequest) -> int:
        """The user's connections on gateways believed alive (what the gateway reports)."""
        assert req.user is not None
        return await self.direct.user_deliveries(req.tenant, req.user)

    async def _event(self, **fields: Any) -> None:
        """Add a `publish` event to the events stream, as the gateway's HTTP API does."""
        if not self.record_events:
            return
        self._event_counter += 1
        entry = event_fields("publish", self._event_prefix + str(self._event_counter),
                             self.publisher_id, int(time.time() * 1000),
                             **{**fields, "source": "api"})
        try:
            stream = await self._event_stream("publish", fields["tenant"], None)
        except RedisError as exc:
            log.warning("publish event not recorded: %s", exc)
            return
        self.events.maxlen = EVENTS_MAXLEN // (self._partitions or 1)
        self.events.add(stream, entry)
