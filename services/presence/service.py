"""The presence process: stream consumer, arq jobs and HTTP API around one engine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from typing import Any

import httpx
from arq import cron
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker, func
from redis.exceptions import ResponseError

from goldwire.presence import jobs
from goldwire.presence.engine import PresenceChange, PresenceEngine
from goldwire.presence.events import parse_event
from goldwire.presence.metrics import PresenceMetrics
from goldwire.presence.notify import publish_changes
from goldwire.presence.pacing import DiffPacer
from goldwire.presence.settings import PresenceSettings
from goldwire.protocol.keys import Keys
from goldwire.protocol.partitions import CONNECTION
from goldwire.service import cron_name, redis_clients, run_supervised
from goldwire.service.base import BackgroundService
from goldwire.store.connect import STORE_ERRORS
from goldwire.store.partitions import streams_to_read
from goldwire.streams import StreamConsumer
from goldwire.streams.partitioned import PartitionedConsumer

log = logging.getLogger("goldwire.presence")

SERVICE = "presence"
WEBHOOKS = "presence-webhooks"


class PresenceService(BackgroundService):
    def __init__(self, settings: PresenceSettings) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.redis, self._stream_redis = redis_clients(settings.redis_url)
        self.stats: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()  # events applied, by kind
        self.metrics = PresenceMetrics(self)
        self.engine = PresenceEngine(self.redis, self.keys,
                                     int(settings.presence_leave_grace * 1000),
                                     settings.tombstone_ttl,
                                     DiffPacer(settings.presence_diff_budget,
                                               settings.presence_diff_max_interval * 1000),
                                     observe_diff_age=self.metrics.join_to_diff.observe)
        self.consumer = PartitionedConsumer(self._stream_redis,
                                            self.keys.consumer_group(SERVICE), self._lane)
        self.http = httpx.AsyncClient(timeout=3)
        self.arq: ArqRedis | None = None
        super().__init__()  # self._tasks: the loops start() runs

    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)

    def _lane(self, streams: list[str], name: str) -> StreamConsumer:
        """A reader of some partitions (all of them on one Redis: PartitionedConsumer)."""
        s = self.settings
        return StreamConsumer(self._stream_redis, streams, self.consumer.group, self.handle,
                              batch=s.presence_batch, linger_ms=s.presence_read_linger_ms,
                              claim_idle_ms=int(s.presence_claim_idle * 1000),
                              dead_letter=self.keys.dead_letters(),
                              dead_letter_maxlen=s.dead_letter_maxlen, name=name)

    async def start(self) -> None:
        settings = self.settings
        self.arq = await create_pool(RedisSettings.from_dsn(settings.jobs_url),
                                     default_queue_name=self.keys.job_queue(SERVICE))
        self.consumer.read(await streams_to_read(
            self.redis, self.keys, self.settings.event_partitions, (CONNECTION,)))
        await self.consumer.ensure_group()
        self._tasks = [asyncio.create_task(self.consumer.run(), name="presence-consumer"),
                       asyncio.create_task(self.run_paced_flushes(), name="presence-paced")]
        self._tasks += [asyncio.create_task(run_supervised(name, build, self.stats),
                                            name=f"presence-{name}")
                        for name, build in self._workers()]
        log.info("presence consumer %s started", self.consumer.name)

    def _workers(self) -> list[tuple[str, Any]]:
        """Two arq workers on two queues: webhook deliveries (which may wait on a slow
        receiver) can never take the slots the sweep and the pending leaves need."""
        settings = self.settings
        every = max(1, settings.presence_sweep_interval)
        prefix = self.keys.prefix
        common: dict[str, Any] = {
            "redis_settings": RedisSettings.from_dsn(settings.jobs_url),
            "ctx": {"service": self}, "handle_signals": False, "poll_delay": 0.2,
            "keep_result": 0, "log_results": False,
        }

        def sweeper() -> Worker:
            return Worker(
                cron_jobs=[
                    # Named under the key prefix: arq's cron job ids are global, and two
                    # deployments on one Redis must not take each other's ticks.
                    cron(jobs.sweep_dead_nodes, name=cron_name(prefix, SERVICE, "sweep"),
                         second=set(range(0, 60, every)), run_at_startup=True),
                    cron(jobs.expire_pending_leaves,
                         name=cron_name(prefix, SERVICE, "expire_pending_leaves"),
                         second=set(range(60))),
                ],
                queue_name=self.keys.job_queue(SERVICE), max_jobs=4, **common)

        def webhooks() -> Worker:
            return Worker(
                functions=[func(jobs.deliver_webhook, max_tries=settings.presence_webhook_tries)],
                queue_name=self.keys.job_queue(WEBHOOKS), max_jobs=20, **common)

        return [("sweeper", sweeper), ("webhooks", webhooks)]

    async def run_paced_flushes(self) -> None:
        """Flush the rooms the pacer held back, each when its interval is over.

        If a flush fails, its due entries stay and the sweeper's job (every second,
        any replica) flushes the rooms.
        """
        pacer, armed = self.engine.pacer, self.engine.flush_deferred
        while True:
            due = pacer.next_due()
            now = self.now_ms()
            if due is None or due > now:
                armed.clear()
                timeout = None if due is None else (due - now) / 1000
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(armed.wait(), timeout)
                continue
            due = pacer.take_due(now)
            try:
                await self.publish(await self.engine.flush_paced(due, now))
                self.stats["paced_flushes"] += 1
            except STORE_ERRORS as exc:
                log.warning("presence: paced flush failed (%s); the sweeper retries", exc)
                await asyncio.sleep(0.1)

    async def close(self) -> None:
        await self.http.aclose()
        await self._stream_redis.aclose()
        await self.redis.aclose()

    async def handle(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """One batch of gateway events: apply, then tell backends what changed.

        A script error (bad data the scripts trip on) would otherwise fail the batch
        forever; the batch is then applied event by event and the culprit skipped.
        """
        events = [ev for _, fields in entries if (ev := parse_event(fields)) is not None]
        try:
            changes = await self.engine.apply(events)
        except ResponseError:
            changes = []
            for ev in events:
                try:
                    changes += await self.engine.apply([ev])
                except ResponseError:
                    self.stats["events_skipped"] += 1
                    log.exception("presence: skipping an event the scripts refuse: %s", ev)
        self.stats["events_handled"] += len(events)
        self.kinds.update(ev.kind for ev in events)
        await self.publish(changes)

    async def publish(self, changes: list[PresenceChange]) -> None:
        if changes and self.arq is not None:
            await publish_changes(self.redis, self.arq, self.keys.presence_events(),
                                  self.settings.presence_events_maxlen, changes,
                                  self.keys.job_queue(WEBHOOKS), self.keys.prefix,
                                  webhook=bool(self.settings.presence_webhook_url))
            self.stats["changes_published"] += len(changes)

