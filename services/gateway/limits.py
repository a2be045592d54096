"""Per-connection rate limiting: a token bucket plus a flood counter."""

from __future__ import annotations


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; one token per frame."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = now

    def allow(self, now: float) -> bool:
        tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return True
        self._tokens = tokens
        return False
