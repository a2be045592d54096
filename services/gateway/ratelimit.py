"""Token buckets in Redis, so a limit holds over every gateway, not per process.

One Lua call reads, refills and takes from a bucket, so two gateways taking at
once never both get the last token. The clock is Redis's own (`TIME`): gateways
with skewed clocks still share one idea of how much has refilled. A bucket
expires once it would be full again, so idle clients and tenants cost nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis

TAKE = """
-- KEYS: the bucket (hash t = tokens, s = stamp ms); ARGV: rate per s, burst, cost
-- A negative cost gives tokens back (a refund). Returns {taken 0/1, retry after ms}.
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 't', 's')
local tokens, stamp = tonumber(b[1]), tonumber(b[2])
if tokens == nil or stamp == nil then tokens, stamp = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate / 1000)
local ok, wait = 0, 0
if tokens >= cost then
  tokens, ok = math.min(burst, tokens - cost), 1
else
  wait = math.ceil((cost - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 't', string.format('%.6f', tokens), 's', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
return {ok, wait}
"""


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
        self._take = redis.register_script(TAKE)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    async def take(self, key: str, cost: int = 1) -> Verdict:
        if not self.enabled:
            return Verdict(True, 0)
        ok, wait = await self._take(keys=[key], args=[self.rate, self.burst, cost])
        return Verdict(bool(ok), int(wait))

    async def refund(self, key: str, cost: int) -> None:
        """Give back what a take got for work that was then refused anyway."""
        if self.enabled and cost > 0:
            await self._take(keys=[key], args=[self.rate, self.burst, -cost])
