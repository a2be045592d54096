"""Token buckets in Redis, so a limit holds over every gateway, not per process.

One Lua call reads, refills and takes from a bucket, so two gateways taking at
once never both get the last token. The clock is Redis's own (`TIME`): gateways
with skewed clocks still share one idea of how much has refilled. A bucket
expires once it would be full again, so idle clients and tenants cost nothing.
The script is rate_take.lua beside this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis

from goldwire.store.lua import bind


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after_ms: int

    @property
    def retry_after(self) -> int:
        """`Retry-After` in whole seconds, at least 1."""
        return max(1, math.ceil(self.retry_after_ms / 1000))


class RedisRateLimiter:
    """`rate` per second with `burst` saved up, per key; rate 0 turns it off."""

    def __init__(self, redis: Redis, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._take = bind(redis, __package__, "rate_take.lua")

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    async def take(self, key: str, cost: int = 1) -> Verdict:
        if not self.enabled:
            return Verdict(True, 0)
        ok, wait = await self._take(bucket=key, rate=self.rate, burst=self.burst, cost=cost)
        return Verdict(bool(ok), int(wait))

    async def refund(self, key: str, cost: int) -> None:
        """Give back what a take got for work that was then refused anyway."""
        if self.enabled and cost > 0:
            await self._take(bucket=key, rate=self.rate, burst=self.burst, cost=-cost)
