"""The activity service's stream reader: `StreamConsumer` with batches in flight.

The shared consumer reads a batch, handles it, acknowledges it, then reads the next,
so the worker's CPU (reading, packing) and Redis's (running RECORD) take turns.
Here the next batch is read and packed, and its writes are sent, while earlier
batches' writes still run in Redis (at most `depth` batches in flight, so Redis
always has work queued). A batch is acknowledged only after its own writes
returned, in order, so at-least-once holds exactly as before: a crash leaves the
batches in flight pending, and they are recorded again (counted once, see
scripts.py; RECORD's effects do not depend on the order calls run in). Claims of a
dead consumer's entries and re-reading our own pending entries after a failure go
through the same path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from goldwire.streams import StreamConsumer
from goldwire.streams.consumer import Entry

log = logging.getLogger("goldwire.activity.consumer")

Prepare = Callable[[list[Entry]], Any]
Apply = Callable[[Any], Coroutine[Any, Any, None]]


class PipelinedConsumer(StreamConsumer):
    def __init__(self, redis: Redis, stream: str, group: str, prepare: Prepare, apply: Apply,
                 depth: int = 2, **options: Any) -> None:
        super().__init__(redis, stream, group, self._never, **options)
        self.prepare = prepare  # entries -> prepared work (CPU only)
        self.apply = apply  # prepared work -> its writes
        self.depth = max(1, depth)
        self._inflight: deque[tuple[asyncio.Task[None], list[bytes]]] = deque()

    @staticmethod
    async def _never(entries: list[Entry]) -> None:
        raise AssertionError("PipelinedConsumer prepares and applies; it has no handler")

    async def run(self) -> None:
        delay = 0.1
        own_pending = True  # after a start or a failure, first finish what we hold
        next_claim = 0.0
        self.stats.running = True
        try:
            while True:
                try:
                    await self.ensure_group()
                    if own_pending:
                        await self._settle(0)
                        entries = await self._read("0")
                        if not entries:
                            own_pending = False
                            continue
                    else:
                        if time.monotonic() >= next_claim:
                            next_claim = time.monotonic() + self.claim_every
                            await self._claim_dead()
                        # With a batch in flight, do not wait for new entries: settle it.
                        entries = await self._read_new(block=not self._inflight)
                    if entries:
                        await self._process(entries)
                    else:
                        await self._settle(0)
                    delay = 0.1
                except asyncio.CancelledError:
                    raise
                except (RedisError, OSError) as exc:
                    self.stats.failures += 1
                    own_pending = True
                    log.warning("%s: stream read/record failed (%s); retry in %.1fs",
                                self.group, exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
        finally:
            self.stats.running = False
            for task, _ in self._inflight:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            self._inflight.clear()

    async def _read_new(self, block: bool) -> list[Entry]:
        res = await self.redis.xreadgroup(self.group, self.name, {self.stream: ">"},
                                          count=self.batch,
                                          block=self.block_ms if block else None)
        if not res:
            return []
        return [(eid, fields) for eid, fields in res[0][1] if fields]

    async def _process(self, entries: list[Entry]) -> None:
        prepared = self.prepare(entries)  # while earlier batches run in Redis
        await self._settle(self.depth - 1)
        self._inflight.append((asyncio.create_task(self.apply(prepared)),
                               [eid for eid, _ in entries]))

    async def _settle(self, keep: int) -> None:
        """Wait for the oldest batches in flight until `keep` are left, acknowledging
        each (raises if its writes failed; the ones after it stay pending)."""
        while len(self._inflight) > keep:
            task, ids = self._inflight[0]
            try:
                await task
            except BaseException:
                self._inflight.popleft()
                raise
            self._inflight.popleft()
            await self.redis.xack(self.stream, self.group, *ids)
            self.stats.handled += len(ids)
            self.stats.batches += 1
            self.stats.last_batch_at = time.time()
