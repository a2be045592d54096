"""Publishing that outlives a gateway restart: an ordered queue with retries.

The app saves an edit first and publishes it second. If the gateway is down
at that moment (a deploy, a crash), `HttpPublisher` gives up after a few quick
retries, yet the edit is saved and every viewer must still see it. So each
publish waits here, in order, and is retried with the same idempotency key
until the gateway takes it: the gateway delivers a key once, so a retry after
a lost response is not seen twice. Viewers who were disconnected meanwhile
rejoin with `since` and get it from the room's history.

Limit: the gateway remembers keys for its idempotency window (300 s by
default); an outage longer than that may deliver an edit twice, which the
pages ignore anyway (they apply a document version only once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from goldwire.client import Publisher, PublishRejected, PublishUnavailable
from goldwire.client.publisher import new_idempotency_key

log = logging.getLogger(__name__)

Publish = Callable[[Publisher, str], Awaitable[Any]]
"""One publish: called with the publisher and its idempotency key (the same on every retry)."""


class LiveFeed:
    """Runs publishes one at a time, in the order they were queued, until each is accepted."""

    def __init__(self, publisher: Publisher, min_delay: float = 0.2, max_delay: float = 2.0
                 ) -> None:
        self.publisher = publisher
        self.min_delay, self.max_delay = min_delay, max_delay
        self._queue: asyncio.Queue[tuple[Publish, str]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="documents-live-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def send(self, publish: Publish) -> None:
        """Queue a publish; it goes out after every publish queued before it."""
        self._queue.put_nowait((publish, new_idempotency_key()))

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def _run(self) -> None:
        while True:
            publish, key = await self._queue.get()
            delay = self.min_delay
            while True:
                try:
                    await publish(self.publisher, key)
                    break
                except PublishUnavailable as exc:
                    log.warning("gateway unavailable, retrying in %.1fs: %s", delay, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.max_delay)
                except PublishRejected as exc:  # a bug in what we send: retrying cannot help
                    log.error("publish rejected, dropped: %s", exc)
                    break
