"""Retry strategy of the publishers: exponential backoff with jitter, swappable.

Why a separate object (like redis-py's backoff classes): tests want retries
in milliseconds, production wants them in tenths of seconds, and both
publishers must retry the same way so that they stay interchangeable.

Only `PublishUnavailable` is retried: the request may or may not have been
applied, and the idempotency key the caller or the publisher chose makes the
retry safe (the gateway answers a repeated key with the first result and does
not deliver again). Everything else is raised at once.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from goldwire.client.errors import PublishUnavailable

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ExponentialBackoff:
    """`base * 2**attempt` seconds, capped, with up to `jitter` of it taken off at random.

    The jitter spreads retries of many publishers that failed together (a
    gateway restart) so they do not all come back in the same millisecond.
    """

    base: float = 0.1
    cap: float = 2.0
    jitter: float = 0.2

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (0 for the first retry)."""
        full = min(self.cap, self.base * (2**attempt))
        return full * (1.0 - self.jitter * random.random())


async def with_retries(
    attempt: Callable[[], Awaitable[T]], retries: int, backoff: ExponentialBackoff
) -> T:
    """Run `attempt`; on PublishUnavailable, wait and run it again, at most `retries` more times.

    The last PublishUnavailable is raised with `attempts` set to how many were made.
    """
    made = 0
    while True:
        made += 1
        try:
            return await attempt()
        except PublishUnavailable as exc:
            if made > retries:
                exc.attempts = made
                raise
            await asyncio.sleep(backoff.delay(made - 1))
