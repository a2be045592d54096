"""Recording: a batch of events in, one pipelined round trip of RECORD calls out.

A batch is cut into chunks of `activity_script_chunk` entries, grouped by tenant;
each is one RECORD call (scripts.py: the history doubles as the duplicate check, so
a redelivered batch counts nothing twice). The consumer acknowledges the batch only
after every call returned.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from goldwire.activity import scripts
from goldwire.activity.events import ActivityEvent, pack_fields
from goldwire.activity.settings import ActivitySettings
from goldwire.protocol.keys import Keys
from goldwire.store.lua import BoundScript

log = logging.getLogger("goldwire.activity.recorder")


@dataclass
class RecordResult:
    recorded: int = 0  # new events, all their effects written
    duplicates: int = 0  # already recorded (redelivered or re-sent)
    too_old: int = 0  # older than the retention window: not recorded
    replayed: int = 0  # a gateway's re-announcements: live state only
    skipped: int = 0  # events the script refused (bad data), skipped

    def __iadd__(self, other: RecordResult) -> RecordResult:
        self.recorded += other.recorded
        self.duplicates += other.duplicates
        self.too_old += other.too_old
        self.replayed += other.replayed
        self.skipped += other.skipped
        return self


@dataclass
class Prepared:
    """A batch packed for RECORD: (tenant, packed events) per call."""

    seen: int = 0
    skipped: int = 0
    calls: list[tuple[str, list[bytes]]] = field(default_factory=list)


class Recorder:
    def __init__(self, redis: Redis, keys: Keys, settings: ActivitySettings) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self._record = BoundScript(scripts.RECORD, redis)

    def prepare(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> Prepared:
        """Pack stream entries into RECORD calls: chunks of one tenant (CPU only).
        Entries that are not activity, or are malformed, are counted as skipped."""
        step = max(1, self.settings.activity_script_chunk)
        prepared = Prepared(seen=len(entries))
        for i in range(0, len(entries), step):
            by_tenant: dict[str, list[bytes]] = {}
            for _, fields in entries[i:i + step]:
                packed = pack_fields(fields)
                if packed is None:
                    prepared.skipped += 1
                else:
                    by_tenant.setdefault(packed[0], []).append(packed[1])
            prepared.calls += by_tenant.items()
        return prepared

    async def apply(self, prepared: Prepared, now_ms: int | None = None) -> RecordResult:
        """Run the calls (concurrently, on pooled connections: the script's effects do
        not depend on the order chunks run in); returns when all are stored."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        calls = [asyncio.create_task(self._call(tenant, now, items))
                 for tenant, items in prepared.calls]
        result = RecordResult(skipped=prepared.skipped)
        try:
            tenants = {tenant for tenant, _ in prepared.calls}
            if tenants:
                await self.redis.sadd(self.keys.activity_tenants(),  # type: ignore[misc]
                                      *tenants)
        finally:
            done = await asyncio.gather(*calls, return_exceptions=True)
        for r in done:
            if isinstance(r, BaseException):
                raise r
            result += r
        return result

    async def record_entries(self, entries: list[tuple[bytes, dict[bytes, bytes]]],
                             now_ms: int | None = None) -> RecordResult:
        """Record stream entries (prepare, then apply)."""
        return await self.apply(self.prepare(entries), now_ms)

    async def record_events(self, events: list[ActivityEvent],
                            now_ms: int | None = None) -> RecordResult:
        """Record events given as data (tests, the sweep's made-up disconnects)."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        by_tenant: dict[str, list[bytes]] = {}
        for ev in events:
            by_tenant.setdefault(ev.tenant, []).append(ev.packed())
        result = RecordResult()
        if by_tenant:
            await self.redis.sadd(self.keys.activity_tenants(),  # type: ignore[misc]
                                  *by_tenant)
        step = max(1, self.settings.activity_script_chunk)
        for tenant, items in by_tenant.items():
            for i in range(0, len(items), step):
                result += await self._call(tenant, now, items[i:i + step])
        return result

    async def _call(self, tenant: str, now: int, items: list[bytes]) -> RecordResult:
        """One RECORD call; a script error (bad data) falls back to one event at a time
        and skips the culprit (events before it in the chunk may have been recorded:
        the duplicate check makes recording them again harmless)."""
        s = self.settings
        try:
            reply = await self._record(
                **{name: self.keys.activity(tenant, name) for name in scripts.RECORD.keys},
                tag=self.keys.activity_tag(tenant), now=now,
                retention=s.retention_ms, exact_limit=s.activity_exact_users,
                minute_ttl=s.activity_minute_ttl, tomb_ttl=s.activity_tombstone_ttl,
                hour_ttl=s.hour_keys_ttl, events=items)
            return RecordResult(*(int(x) for x in reply))
        except ResponseError:
            if len(items) == 1:
                log.exception("activity: skipping an event the script refuses: %r", items[0])
                return RecordResult(skipped=1)
        result = RecordResult()
        for item in items:
            result += await self._call(tenant, now, [item])
        return result
