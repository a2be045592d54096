"""The activity process: stream consumer, arq jobs and HTTP API around the recorder."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from arq import cron
from arq.connections import RedisSettings
from arq.worker import Worker

from goldwire.activity import jobs, scripts
from goldwire.activity.consumer import PipelinedConsumer
from goldwire.activity.metrics import activity_metrics
from goldwire.activity.queries import Analytics
from goldwire.activity.recorder import Prepared, Recorder
from goldwire.activity.settings import ActivitySettings
from goldwire.protocol.frames import room_frame_parts
from goldwire.protocol.keys import Keys
from goldwire.protocol.messages import MessageType
from goldwire.protocol.partitions import FAMILIES
from goldwire.service import cron_name, redis_clients, run_supervised
from goldwire.service.base import BackgroundService
from goldwire.store.lua import BoundScript
from goldwire.store.partitions import streams_to_read
from goldwire.store.rooms import RoomStore
from goldwire.streams.partitioned import PartitionedConsumer

log = logging.getLogger("goldwire.activity")

SERVICE = "activity"
STATS_TTL_MS = 3_600_000  # the stats room's history outlives a dashboard's reconnect


class ActivityService(BackgroundService):
    def __init__(self, settings: ActivitySettings) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.redis, self._stream_redis = redis_clients(settings.redis_url)
        self.recorder = Recorder(self.redis, self.keys, settings)
        self.analytics = Analytics(self.redis, self.keys, settings.activity_exact_users)
        self.fold_minute = BoundScript(scripts.FOLD_MINUTE, self.redis)
        self.users_day_script = BoundScript(scripts.USERS_DAY, self.redis)
        # Only publish() is used, with the stats room's own history size and ttl.
        self.rooms = RoomStore(self.redis, self.keys, settings.activity_stats_history,
                               STATS_TTL_MS // 1000, idempotency_window=0)
        self.consumer = PartitionedConsumer(self._stream_redis,
                                            self.keys.consumer_group(SERVICE), self._lane)
        self.stats: Counter[str] = Counter()
        self.metrics = activity_metrics(self)
        super().__init__()  # self._tasks: the loops start() runs

    def _lane(self, streams: list[str], name: str) -> PipelinedConsumer:
        """A reader of some partitions (all of them on one Redis: PartitionedConsumer)."""
        s = self.settings
        return PipelinedConsumer(self._stream_redis, streams, self.consumer.group,
                                 self.recorder.prepare, self.apply, batch=s.activity_batch,
                                 linger_ms=s.activity_read_linger_ms,
                                 claim_idle_ms=int(s.activity_claim_idle * 1000),
                                 dead_letter=self.keys.dead_letters(),
                                 dead_letter_maxlen=s.dead_letter_maxlen, name=name)

    async def start(self) -> None:
        self.consumer.read(await streams_to_read(
            self.redis, self.keys, self.settings.event_partitions, FAMILIES))
        await self.consumer.ensure_group()
        self._tasks = [
            asyncio.create_task(self.consumer.run(), name="activity-consumer"),
            asyncio.create_task(run_supervised(SERVICE, self._build_worker, self.stats),
                                name="activity-arq"),
        ]
        log.info("activity consumer %s started", self.consumer.name)

    def _build_worker(self) -> Worker:
        s = self.settings
        every = max(1, s.activity_rollup_interval)
        trim_every = max(1, s.activity_trim_minutes)

        def name(job: str) -> str:  # under the key prefix: see goldwire.service.jobs
            return cron_name(self.keys.prefix, SERVICE, job)

        cron_jobs = [
            cron(jobs.live_stats, name=name("live_stats"), second=set(range(60))),
            cron(jobs.rollup, name=name("rollup"), second=set(range(0, 60, every)),
                 run_at_startup=True),
            cron(jobs.trim_retention, name=name("trim_retention"),
                 minute=set(range(0, 60, trim_every)), second={30}, run_at_startup=True),
        ]
        if s.activity_sweep_interval > 0:
            cron_jobs.append(cron(jobs.sweep_dead_nodes, name=name("sweep_dead_nodes"),
                                  second=set(range(0, 60, s.activity_sweep_interval))))
        return Worker(
            functions=[], cron_jobs=cron_jobs,
            redis_settings=RedisSettings.from_dsn(s.jobs_url),
            queue_name=self.keys.job_queue(SERVICE),
            ctx={"service": self}, handle_signals=False, poll_delay=0.2, keep_result=0,
            max_jobs=10, log_results=False,
        )

    async def close(self) -> None:
        await self._stream_redis.aclose()
        await self.redis.aclose()

    async def apply(self, prepared: Prepared) -> None:
        """Record one prepared batch (the consumer acknowledges it afterwards)."""
        result = await self.recorder.apply(prepared)
        self.stats["events_seen"] += prepared.seen
        self.stats["events_recorded"] += result.recorded
        self.stats["events_duplicate"] += result.duplicates
        self.stats["events_too_old"] += result.too_old
        self.stats["events_replayed"] += result.replayed
        self.stats["events_skipped"] += result.skipped

    async def tenants(self) -> list[str]:
        return sorted(t.decode() for t in await self.redis.smembers(self.keys.activity_tenants()))

    async def push_stats(self, tenant: str, stats: dict[str, Any]) -> bool:
        """Publish `stats` to the tenant's stats room through the normal room publish
        path (history + pub/sub in one call), when anyone listens to the room."""
        room = self.settings.activity_stats_room
        channel = self.keys.room_channel(tenant, room)
        listeners = await self.redis.pubsub_numsub(channel)
        if not listeners or not listeners[0][1]:
            return False
        head, tail = room_frame_parts(MessageType.SYSTEM_MESSAGE.value, room,
                                      {"kind": "stats", **stats})
        await self.rooms.publish(tenant, room, head, tail, None)
        return True

