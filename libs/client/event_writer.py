"""`EventWriter`: the `publish` events a `RedisPublisher` records, written behind it.

Each publish adds an event for the activity service. Awaiting that XADD doubled a
publish's round trips, and a backend publishing one room's messages in order (each
after the last) could then publish only about 900 a second on this machine. Events
are best effort (a failure is logged, never raised, as the gateway's outbox does),
so they need not hold the publish up: they are queued in order and written by one
background task, which waits `linger` seconds (10 ms) for more to gather and then
writes all of them in one pipeline: one room's ordered publishes, each awaiting the
last, would otherwise leave one event per pipeline.

The queue is bounded: while Redis refuses, events past `limit` are dropped and
counted (`dropped`), never the publishes themselves. `drain()` waits until every
queued event was written or given up; `RedisPublisher.aclose()` calls it, so a
publisher closed properly loses none.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.exceptions import RedisError

log = logging.getLogger("goldwire.client.publisher")

DEFAULT_LIMIT = 10_000  # events queued while Redis is slow or away
DEFAULT_LINGER = 0.010  # seconds an event waits for others to share its pipeline


class EventWriter:
    def __init__(self, redis: Any, maxlen: int, limit: int = DEFAULT_LIMIT,
                 linger: float = DEFAULT_LINGER) -> None:
        self.redis = redis
        self.linger = linger
        self.maxlen = maxlen  # per stream, approximate (XADD MAXLEN ~)
        self.limit = limit
        self.dropped = 0
        self._queue: list[tuple[str, dict[str, Any]]] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, stream: str, fields: dict[str, Any]) -> None:
        """Queue one event (in the running loop); it is written soon, in order."""
        if len(self._queue) >= self.limit:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("publish events not recorded: %d dropped, Redis is behind",
                            self.dropped)
            return
        self._queue.append((stream, fields))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        while self._queue:
            if self.linger > 0:
                await asyncio.sleep(self.linger)
            batch, self._queue = self._queue, []
            pipe = self.redis.pipeline(transaction=False)
            for stream, fields in batch:
                pipe.xadd(stream, fields, maxlen=self.maxlen, approximate=True)
            try:
                await pipe.execute()
            except RedisError as exc:
                log.warning("%d publish events not recorded: %s", len(batch), exc)

    async def drain(self) -> None:
        """Wait until every queued event was written (or its write failed)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    @property
    def pending(self) -> int:
        return len(self._queue)
