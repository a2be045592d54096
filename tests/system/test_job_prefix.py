"""Two deployments on one Redis (two key prefixes): each runs its own arq jobs.

arq's job keys have fixed prefixes (`arq:job:`, `arq:in-progress:`, `arq:retry:`,
`arq:result:`) and a cron tick's id is `<cron name>:<ms>`, so with the same cron
names two deployments would take each other's ticks (one enqueues a tick, the other
finds the id taken and skips it). Checked here with two real activity processes
whose cron jobs tick every second: both keep running theirs, and every key arq
writes holds its deployment's prefix (in the id part, after arq's fixed prefix).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import pytest
from redis.asyncio import Redis

from tests.support import Activity, jobs_url

pytestmark = pytest.mark.asyncio

ARQ_FIXED = ("arq:job:", "arq:in-progress:", "arq:retry:", "arq:result:")
# an arq id that starts at our service or cron name, or arq's own default cron name
UNPREFIXED = re.compile(r"^arq:(job|in-progress|retry|result):"
                        r"(cron|activity|presence|sessions)[:_]")


def counter(metrics: str, name: str) -> float:
    match = re.search(rf"^goldwire_activity_{name} (\S+)$", metrics, re.M)
    assert match, metrics
    return float(match.group(1))


async def test_two_prefixes_run_their_own_cron_jobs(redis_server, key_prefix) -> None:
    other = "gwtest:" + uuid.uuid4().hex[:8]
    prefixes = (key_prefix, other)
    procs = [Activity(redis_server.url, p, activity_rollup_interval=1).start()
             for p in prefixes]
    redis = Redis.from_url(redis_server.url)
    jobs = Redis.from_url(jobs_url(redis_server.url))  # arq's keys (JOBS_REDIS_URL when set)
    try:
        before = [counter(p.metrics(), "rollups_total") for p in procs]
        seen: set[str] = set()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the ticks' job keys come and go: keep looking
            seen |= {k.decode() async for k in jobs.scan_iter(match="arq:*", count=1000)}
            seen |= {k.decode() for p in prefixes
                     async for k in jobs.scan_iter(match=f"{p}:activity:arq*", count=1000)}
            await asyncio.sleep(0.05)  # stays: a 5 s observation window, sampled
        after = [counter(p.metrics(), "rollups_total") for p in procs]
        # Both ran (about) one rollup a second: neither took the other's ticks.
        assert all(a - b >= 3 for a, b in zip(after, before, strict=True)), (before, after)

        for prefix in prefixes:
            assert f"{prefix}:activity:arq:health-check" in seen, sorted(seen)
            mine = [k for k in seen if k.startswith(ARQ_FIXED) and prefix + ":" in k]
            assert any(f"{prefix}:activity:cron:rollup:" in k for k in mine), sorted(seen)
        # Everything arq wrote under its fixed prefixes holds a deployment's prefix in the
        # id (other tests' leftovers hold theirs): no id starts at the service or cron name.
        written = [k for k in seen if k.startswith(ARQ_FIXED)]
        unprefixed = [k for k in written if UNPREFIXED.match(k)]
        assert written and not unprefixed, sorted(unprefixed)
        assert not [k for k in seen if k.startswith("arq:") and not k.startswith(ARQ_FIXED)]
    finally:
        for proc in procs:
            proc.terminate()
        async for key in redis.scan_iter(match=f"{other}*", count=1000):
            await redis.unlink(key)
        await redis.aclose()
        await jobs.aclose()
