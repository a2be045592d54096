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
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from redis.asyncio import Redis

from goldwire.streams import StreamConsumer
from goldwire.streams.consumer import Entry

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

    async def _read_next(self) -> list[Entry]:
        # With a batch in flight, do not wait for new entries: settle it instead.
        return await self._read(">", block=not self._inflight)

    async def _drain(self) -> None:
        await self._settle(0)

    async def _abandon(self) -> None:
        for task, _ in self._inflight:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self._inflight.clear()

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
