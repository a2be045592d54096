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
through the same path. A batch whose prepare or writes fail with anything but a
Redis error is redone one record at a time, and the failing records become dead
letters, as in `StreamConsumer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from redis.asyncio import Redis

from goldwire.streams import StreamConsumer
from goldwire.streams.consumer import DATA_ERRORS_NOT, Chunk, Entry, log

Prepare = Callable[[list[Entry]], Any]
Apply = Callable[[Any], Coroutine[Any, Any, None]]


class PipelinedConsumer(StreamConsumer):
    def __init__(self, redis: Redis, streams: Sequence[str], group: str, prepare: Prepare,
                 apply: Apply, depth: int = 2, **options: Any) -> None:
        super().__init__(redis, streams, group, self._never, **options)
        self.prepare = prepare  # entries -> prepared work (CPU only)
        self.apply = apply  # prepared work -> its writes
        self.depth = max(1, depth)
        self._inflight: deque[tuple[asyncio.Task[None], list[Chunk]]] = deque()

    @staticmethod
    async def _never(entries: list[Entry]) -> None:
        raise AssertionError("PipelinedConsumer prepares and applies; it has no handler")

    async def _read_next(self) -> list[Chunk]:
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

    async def _handle_one(self, entry: Entry) -> None:
        await self.apply(self.prepare([entry]))

    async def _process(self, chunks: list[Chunk]) -> None:
        entries = [entry for _, part in chunks for entry in part]
        try:
            prepared = self.prepare(entries)  # while earlier batches run in Redis
        except Exception:
            log.warning("%s: preparing a batch of %d failed; one record at a time",
                        self.group, len(entries))
            await self._settle(0)
            await self._handle_each(chunks)
            await self._acknowledge(chunks)
            return
        await self._settle(self.depth - 1)
        self._inflight.append((asyncio.create_task(self.apply(prepared)), chunks))

    async def _settle(self, keep: int) -> None:
        """Wait for the oldest batches in flight until `keep` are left, acknowledging
        each (raises if its writes failed with a Redis error; the ones after it stay
        pending; any other failure redoes the batch record by record)."""
        while len(self._inflight) > keep:
            task, chunks = self._inflight[0]
            try:
                await task
            except DATA_ERRORS_NOT:
                self._inflight.popleft()
                raise
            except Exception:
                self._inflight.popleft()
                log.warning("%s: the writes of a batch of %d failed; one record at a time",
                            self.group, sum(len(part) for _, part in chunks))
                await self._handle_each(chunks)
            except BaseException:
                self._inflight.popleft()
                raise
            else:
                self._inflight.popleft()
            await self._acknowledge(chunks)

    async def _acknowledge(self, chunks: list[Chunk]) -> None:
        """One XACK per stream of the batch, pipelined."""
        if not chunks:
            return
        pipe = self.redis.pipeline(transaction=False)
        for stream, part in chunks:
            pipe.xack(stream, self.group, *[eid for eid, _ in part])
        await pipe.execute()
        self.stats.handled += sum(len(part) for _, part in chunks)
        self.stats.batches += 1
        self.stats.last_batch_at = time.time()
