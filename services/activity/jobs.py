"""arq jobs of the activity service: live stats, roll-ups, retention, dead-gateway sweep.

Every job is safe to run twice or concurrently on two replicas (arq runs a cron tick
once in the usual case, but nothing here depends on it): live stats only read and
publish a snapshot; the roll-up folds a minute by its difference from what it
already added (written in the same call) and recomputes day user counts; the trim
removes by time; a sweep's made-up disconnects have fixed ids, so the duplicate
check drops a second one.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from goldwire.activity.events import ActivityEvent
from goldwire.service import each_record
from goldwire.service.sweep import SWEEP_SEQ, sweep_dead_gateways

log = logging.getLogger("goldwire.activity.jobs")

LIVE_SECONDS_KEPT = 120


def now_ms() -> int:
    return int(time.time() * 1000)


async def live_stats(ctx: dict[str, Any]) -> int:
    """Every second: each tenant's live stats, pushed to its `system:stats` room."""
    service = ctx["service"]
    pushed = 0
    now = now_ms()
    for tenant in await service.tenants():
        stats = await service.analytics.live(tenant, now)
        if await service.push_stats(tenant, stats):
            pushed += 1
        if now // 1000 % 10 == 0:
            await trim_live_seconds(service, tenant, now)
    service.stats["live_ticks"] += 1
    service.stats["stats_pushed"] += pushed
    return pushed


async def trim_live_seconds(service: Any, tenant: str, now: int) -> None:
    key = service.keys.activity(tenant, "live_seconds")
    oldest = now // 1000 - LIVE_SECONDS_KEPT
    old = [f for f in await service.redis.hkeys(key) if not f.isdigit() or int(f) < oldest]
    if old:
        await service.redis.hdel(key, *old)


async def rollup(ctx: dict[str, Any]) -> int:
    """Minute -> hour -> day: fold the minutes that changed, then recompute the distinct
    users of the days that changed. Returns how many counters moved."""
    service = ctx["service"]
    redis, keys = service.redis, service.keys
    moved = 0
    for tenant in await service.tenants():
        dirty = keys.activity(tenant, "dirty_minutes")
        for minute, version in await redis.zrange(dirty, 0, -1, withscores=True,
                                                  score_cast_func=bytes):
            with each_record(f"rollup of minute {minute!r} ({tenant})", service.stats):
                moved += await fold_minute(service, tenant, minute, version)
        dirty = keys.activity(tenant, "dirty_days")
        for day, version in await redis.zrange(dirty, 0, -1, withscores=True,
                                               score_cast_func=bytes):
            with each_record(f"users of day {day!r} ({tenant})", service.stats):
                await users_day(service, tenant, day, version)
    service.stats["rollups"] += 1
    service.stats["rolled_up_counters"] += moved
    return moved


async def fold_minute(service: Any, tenant: str, minute: bytes, version: bytes) -> int:
    """FOLD_MINUTE on one dirty minute, every key it touches named; returns the
    counters that moved."""
    keys, settings, m = service.keys, service.settings, int(minute)
    hour, day = m // 60, m // 1440
    return int(await service.fold_minute(
        dirty_minutes=keys.activity(tenant, "dirty_minutes"),
        counts=keys.activity(tenant, "minute", m),
        folded=keys.activity(tenant, "minute_folded", m),
        hour=keys.activity(tenant, "hour", hour), day=keys.activity(tenant, "day", day),
        rooms_hour=keys.activity(tenant, "rooms_hour", hour),
        rooms_day=keys.activity(tenant, "rooms_day", day),
        minute=minute, version=version,
        hour_ttl=settings.hour_keys_ttl, day_ttl=settings.day_keys_ttl))


async def users_day(service: Any, tenant: str, day: bytes, version: bytes) -> None:
    """USERS_DAY on one dirty day: its 24 hours' user sets passed as keys."""
    keys, settings, d = service.keys, service.settings, int(day)
    hours = [key for h in range(d * 24, d * 24 + 24)
             for key in (keys.activity(tenant, "users_hour_hll", h),
                         keys.activity(tenant, "users_hour", h))]
    await service.users_day_script(
        dirty_days=keys.activity(tenant, "dirty_days"),
        users_overflow=keys.activity(tenant, "users_overflow"),
        users_day=keys.activity(tenant, "users_day", d),
        users_day_hll=keys.activity(tenant, "users_day_hll", d), hours=hours,
        day=day, version=version, exact_limit=settings.activity_exact_users,
        day_ttl=settings.day_keys_ttl)


async def trim_retention(ctx: dict[str, Any]) -> int:
    """Remove history entries older than the retention window, by event time.

    Roll-ups (hour and day counters, top rooms, distinct users) have their own,
    longer lifetimes and are not touched. Returns how many entries were removed.
    """
    service = ctx["service"]
    keys, redis = service.keys, service.redis
    cutoff = now_ms() - service.settings.retention_ms
    removed = 0
    for tenant in await service.tenants():
        for index, part in (("last_active", "user_history"), ("room_index", "room_history")):
            index_key = keys.activity(tenant, index)
            names: list[bytes] = []
            async for name, _ in redis.zscan_iter(index_key, count=1000):
                names.append(name)
                if len(names) == 1000:
                    removed += await _trim(redis, keys, tenant, part, names, cutoff)
                    names = []
            removed += await _trim(redis, keys, tenant, part, names, cutoff)
            await redis.zremrangebyscore(index_key, "-inf", f"({cutoff}")
        removed += await redis.zremrangebyscore(keys.activity(tenant, "api_history"),
                                                "-inf", f"({cutoff}")
    service.stats["trims"] += 1
    service.stats["trimmed_entries"] += removed
    log.info("retention trim removed %d entries", removed)
    return removed


async def _trim(redis: Any, keys: Any, tenant: str, part: str, names: list[bytes],
                cutoff: int) -> int:
    if not names:
        return 0
    pipe = redis.pipeline(transaction=False)
    for name in names:
        pipe.zremrangebyscore(keys.activity(tenant, part, name.decode()), "-inf", f"({cutoff}")
    return sum(await pipe.execute())


async def sweep_dead_nodes(ctx: dict[str, Any]) -> int:
    """End the connections of gateways whose liveness key expired (no disconnect came)."""
    service = ctx["service"]
    keys, redis = service.keys, service.redis
    ended = 0
    for tenant in await service.tenants():
        nodes = [n.decode() for n in await redis.hkeys(keys.activity(tenant, "live_nodes"))]

        async def end(dead: list[str], tenant: str = tenant) -> int:
            return await _end_nodes(service, tenant, set(dead))

        ended += await sweep_dead_gateways(redis, keys, nodes, end)
    service.stats["swept_connections"] += ended
    return ended


async def _end_nodes(service: Any, tenant: str, dead: set[str]) -> int:
    """A made-up disconnect for each of the tenant's live connections on a dead gateway."""
    keys, redis = service.keys, service.redis
    now = now_ms()
    events = []
    async for conn, value in redis.hscan_iter(keys.activity(tenant, "live_conns"), count=1000):
        user, _, node = value.decode().partition("\t")
        if node in dead:
            events.append(ActivityEvent(
                id=f"sweep-{conn.decode()}", kind="disconnect", ts=now, tenant=tenant,
                user=user, conn=conn.decode(), seq=SWEEP_SEQ, node=node, swept=True))
    if events:
        await service.recorder.record_events(events, now)
    else:  # counts without connections behind them
        await redis.hdel(keys.activity(tenant, "live_nodes"), *dead)
    log.info("swept dead gateways %s: %d connections", sorted(dead), len(events))
    return len(events)
