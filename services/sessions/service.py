"""The sessions process: event consumer, arq cleanup job and HTTP API around one store.

The consumer keeps each session's rooms and offsets current from the
gateway's join, leave and disconnect events (the connect itself is handled by
the gateway through the same store, so it never waits on this process).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from arq import cron
from arq.connections import RedisSettings
from arq.worker import Worker

from goldwire.protocol.channels import format_close
from goldwire.protocol.codes import CloseCode
from goldwire.protocol.events import MalformedEvent, parse_event
from goldwire.protocol.keys import Keys
from goldwire.protocol.partitions import CONNECTION
from goldwire.service import cron_name, redis_clients, run_loading_scripts, run_supervised
from goldwire.service.base import BackgroundService
from goldwire.sessions.metrics import sessions_metrics
from goldwire.sessions.settings import SessionsSettings
from goldwire.store.connect import node_publish
from goldwire.store.inbox import Inbox
from goldwire.store.partitions import streams_to_read
from goldwire.store.sessions import SessionStore
from goldwire.streams import StreamConsumer
from goldwire.streams.partitioned import PartitionedConsumer

log = logging.getLogger("goldwire.sessions")

SERVICE = "sessions"
SESSION_KINDS = frozenset({"join", "leave", "disconnect"})
_SESSION_KINDS_B = frozenset(k.encode() for k in SESSION_KINDS)


async def cleanup_expired(ctx: dict[str, Any]) -> int:
    service: SessionsService = ctx["service"]
    removed = await service.store.expire_due()
    service.stats["sessions_expired"] += removed
    return removed


class SessionsService(BackgroundService):
    def __init__(self, settings: SessionsSettings) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.redis, self._stream_redis = redis_clients(settings.redis_url)
        self.store = SessionStore(self.redis, self.keys, settings.session_timeout_hours)
        self.inbox = Inbox(self.redis, self.keys, settings.notifications_max,
                           settings.notifications_retention_days, settings.idempotency_window)
        self.consumer = PartitionedConsumer(self._stream_redis,
                                            self.keys.consumer_group(SERVICE), self._lane)
        self.stats: Counter[str] = Counter()
        self.metrics = sessions_metrics(self)
        super().__init__()  # self._tasks: the loops start() runs

    def _lane(self, streams: list[str], name: str) -> StreamConsumer:
        """A reader of some partitions (all of them on one Redis: PartitionedConsumer)."""
        s = self.settings
        return StreamConsumer(self._stream_redis, streams, self.consumer.group, self.handle,
                              batch=s.sessions_batch, linger_ms=s.sessions_read_linger_ms,
                              claim_idle_ms=int(s.sessions_claim_idle * 1000),
                              dead_letter=self.keys.dead_letters(),
                              dead_letter_maxlen=s.dead_letter_maxlen, name=name)

    async def start(self) -> None:
        self.consumer.read(await streams_to_read(
            self.redis, self.keys, self.settings.event_partitions, (CONNECTION,)))
        await self.consumer.ensure_group()
        self._tasks = [asyncio.create_task(self.consumer.run(), name="sessions-consumer"),
                       asyncio.create_task(run_supervised("cleanup", self._worker, self.stats),
                                           name="sessions-arq")]

    async def close(self) -> None:
        await self._stream_redis.aclose()
        await self.redis.aclose()

    def _worker(self) -> Worker:
        every = max(1, min(59, self.settings.sessions_cleanup_interval))
        return Worker(
            cron_jobs=[cron(cleanup_expired,
                            name=cron_name(self.keys.prefix, SERVICE, "cleanup_expired"),
                            second=set(range(0, 60, every)), run_at_startup=True)],
            redis_settings=RedisSettings.from_dsn(self.settings.jobs_url),
            queue_name=self.keys.job_queue(SERVICE), ctx={"service": self},
            handle_signals=False, poll_delay=0.5, keep_result=0, log_results=False)

    async def handle(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Each join, leave and disconnect moves its session's rooms and offsets."""
        events: list[dict[str, Any]] = []  # queue_event's arguments
        for _, raw in entries:
            if raw.get(b"kind") not in _SESSION_KINDS_B or not raw.get(b"session"):
                continue  # most entries are not ours: skip them before parsing
            try:
                e = parse_event(raw)
            except MalformedEvent:
                self.stats["events_skipped"] += 1
                continue
            if e.replay:
                continue
            events.append({"kind": e.kind, "tenant": e.tenant, "user": e.user,
                           "sid": e.session, "conn": e.conn, "room": e.room,
                           "offset": e.offset, "offsets": e.offsets, "now": e.ts or None})

        async def write() -> None:
            pipe = self.redis.pipeline(transaction=False)
            for event in events:
                self.store.queue_event(pipe, **event)
            await pipe.execute()

        if events:
            await run_loading_scripts(self.redis, self.store.event_scripts, write)
        self.stats["events_handled"] += len(events)

    async def revoke(self, tenant: str, user: str, sid: str) -> bool:
        """Revoke a session and close its sockets on every gateway (close 4010)."""
        existed, conns = await self.store.revoke(tenant, user, sid)
        for conn, node in conns.items():
            await node_publish(self.redis, self.keys.node_channel(node), format_close(
                conn, CloseCode.SESSION_REVOKED, "session revoked"))
        return existed
