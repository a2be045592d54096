"""Activity's Lua (record.lua, fold_minute.lua, users_day.lua) through the code that
calls it (Recorder, jobs.fold_minute, jobs.users_day) against a real Redis: events
count once however often they come, a visit's time goes to every day it spans, every
key a call touches is in the tenant's hash slot (Redis Cluster needs it), and the
roll-ups add each minute once and keep distinct users exact until their limit."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from goldwire.activity import jobs, scripts
from goldwire.activity.events import ActivityEvent
from goldwire.activity.recorder import Recorder
from goldwire.activity.settings import ActivitySettings
from goldwire.protocol.keys import Keys
from goldwire.store.lua import BoundScript

DAY_MS = 86_400_000


@pytest.fixture
async def redis(redis_server: Any) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


def service(redis: aioredis.Redis, prefix: str, **settings: Any) -> SimpleNamespace:
    """What the jobs read from ActivityService, with the real scripts bound."""
    return SimpleNamespace(
        redis=redis, keys=Keys(prefix), settings=ActivitySettings(**settings),
        fold_minute=BoundScript(scripts.FOLD_MINUTE, redis),
        users_day_script=BoundScript(scripts.USERS_DAY, redis))


def visit(user: str, conn: str, room: str, start: int, end: int) -> list[ActivityEvent]:
    """connect, join, a message, leave and disconnect of one connection."""
    return [
        ActivityEvent(f"{conn}-1", "connect", start, user=user, conn=conn, seq=1, node="gw"),
        ActivityEvent(f"{conn}-2", "join", start, user=user, room=room, conn=conn, seq=2,
                      node="gw"),
        ActivityEvent(f"{conn}-3", "publish", start + 1, user=user, room=room, conn=conn,
                      seq=3, node="gw", type="edit", offset="1-0"),
        ActivityEvent(f"{conn}-4", "leave", end, user=user, room=room, conn=conn, seq=4,
                      node="gw"),
        ActivityEvent(f"{conn}-5", "disconnect", end, user=user, conn=conn, seq=5, node="gw"),
    ]


async def all_keys(redis: aioredis.Redis, prefix: str) -> list[bytes]:
    return [k async for k in redis.scan_iter(match=f"{prefix}:*", count=1000)]


async def test_record_counts_each_event_once_and_touches_only_the_tenants_slot(
        redis: aioredis.Redis, key_prefix: str) -> None:
    keys = Keys(key_prefix)
    recorder = Recorder(redis, keys, ActivitySettings())
    now = int(time.time() * 1000)
    events = [*visit("ada", "c1", "doc:1", now - 60_000, now),
              ActivityEvent("api-1", "send", now, api="send", to="bob")]
    first = await recorder.record_events(events, now_ms=now)
    assert (first.recorded, first.duplicates) == (len(events), 0)
    minute = keys.activity("default", "minute", (now - 59_999) // 60_000)
    counts = await redis.hgetall(minute)
    assert counts[b"k:publish"] == b"1" and counts[b"r:doc:1"] == b"1"

    again = await recorder.record_events(events, now_ms=now)  # a redelivered batch
    assert (again.recorded, again.duplicates) == (0, len(events))
    assert await redis.hgetall(minute) == counts

    slot = key_slot(keys.activity_tag("default").encode())
    tenants = keys.activity_tenants().encode()  # the jobs' index, outside any tenant
    touched = [k for k in await all_keys(redis, key_prefix) if k != tenants]
    assert len(touched) > len(scripts.RECORD.keys)  # the per-user/room/minute families too
    assert {key_slot(k) for k in touched} == {slot}
    assert all(k.startswith(keys.activity_tag("default").encode()) for k in touched)


async def test_a_visit_over_three_days_counts_its_time_on_each_day(
        redis: aioredis.Redis, key_prefix: str) -> None:
    keys = Keys(key_prefix)
    recorder = Recorder(redis, keys, ActivitySettings())
    now = int(time.time() * 1000)
    today = now // DAY_MS
    start = (today - 2) * DAY_MS + DAY_MS // 2  # noon, two days ago
    events = visit("ada", "c1", "doc:1", start, now)
    join, leave = events[:2], events[3:]
    await recorder.record_events(join, now_ms=now)
    await recorder.record_events(leave, now_ms=now)  # a later chunk closes the visit

    per_day = {}
    for day in (today - 2, today - 1, today):
        key = keys.activity("default", "user_day", day, "ada")
        per_day[day] = int(await redis.hget(key, "t:doc:1") or 0)
        assert await redis.expiretime(key) > now // 1000  # every day's key expires
    assert per_day[today - 1] == DAY_MS
    assert sum(per_day.values()) == now - start


async def test_fold_minute_adds_each_minute_once_and_only_what_changed(
        redis: aioredis.Redis, key_prefix: str) -> None:
    svc = service(redis, key_prefix)
    keys = svc.keys
    recorder = Recorder(redis, keys, svc.settings)
    now = int(time.time() * 1000)
    await recorder.record_events(visit("ada", "c1", "doc:1", now - 1000, now), now_ms=now)
    dirty = keys.activity("default", "dirty_minutes")
    minute = (now - 999) // 60_000
    hour, day = minute // 60, minute // 1440
    ((member, version),) = [x for x in await redis.zrange(dirty, 0, -1, withscores=True,
                                                          score_cast_func=bytes)
                            if int(x[0]) == minute]

    assert await jobs.fold_minute(svc, "default", member, b"0") > 0  # a stale version:
    assert await redis.zscore(dirty, member) is not None  # ...the minute stays dirty
    assert await jobs.fold_minute(svc, "default", member, version) == 0  # nothing new
    assert await redis.zscore(dirty, member) is None
    assert await redis.hget(keys.activity("default", "hour", hour), "k:publish") == b"1"
    assert await redis.hget(keys.activity("default", "day", day), "k:join") == b"1"
    assert await redis.zscore(keys.activity("default", "rooms_hour", hour), "doc:1") == 1

    more = [ActivityEvent("x-1", "publish", now - 500, user="bob", room="doc:1", conn="c2",
                          seq=1, node="gw", type="edit", offset="2-0")]
    await recorder.record_events(more, now_ms=now)
    ((member, version),) = [x for x in await redis.zrange(dirty, 0, -1, withscores=True,
                                                          score_cast_func=bytes)
                            if int(x[0]) == minute]
    assert await jobs.fold_minute(svc, "default", member, version) == 3  # k:, t:, r: moved
    assert await redis.hget(keys.activity("default", "hour", hour), "k:publish") == b"2"
    assert await redis.zscore(keys.activity("default", "rooms_day", day), "doc:1") == 2
    assert await redis.ttl(keys.activity("default", "hour", hour)) > 0


async def dirty_version(redis: aioredis.Redis, key: str, member: int) -> bytes:
    """The member's score as the roll-up job reads it (raw bytes)."""
    scores = dict(await redis.zrange(key, 0, -1, withscores=True, score_cast_func=bytes))
    return scores[str(member).encode()]


async def test_users_of_a_day_exact_until_the_limit_then_estimated(
        redis: aioredis.Redis, key_prefix: str) -> None:
    svc = service(redis, key_prefix, activity_exact_users=2)
    keys = svc.keys
    recorder = Recorder(redis, keys, svc.settings)
    now = int(time.time() * 1000)
    day = now // DAY_MS - 1  # yesterday: every hour of it is past
    first, second = day * DAY_MS + 60_000, day * DAY_MS + 3_660_000  # in two hours

    def online(n: int, ts: int, user: str) -> ActivityEvent:
        return ActivityEvent(f"e{n}", "status", ts, user=user, conn=f"c{n}", seq=1,
                             node="gw", status="online")

    await recorder.record_events([online(1, first, "ada"), online(2, second, "bob")],
                                 now_ms=now)
    dirty = keys.activity("default", "dirty_days")
    await jobs.users_day(svc, "default", str(day).encode(),
                         await dirty_version(redis, dirty, day))
    assert await redis.smembers(keys.activity("default", "users_day", day)) == {b"ada", b"bob"}
    assert await redis.zscore(dirty, str(day)) is None

    await recorder.record_events([online(3, second, "cy")], now_ms=now)
    await jobs.users_day(svc, "default", str(day).encode(),
                         await dirty_version(redis, dirty, day))
    assert not await redis.exists(keys.activity("default", "users_day", day))  # over 2
    assert await redis.pfcount(keys.activity("default", "users_day_hll", day)) == 3
    assert await redis.hget(keys.activity("default", "users_overflow"), f"d{day}") == b"1"
