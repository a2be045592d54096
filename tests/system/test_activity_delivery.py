"""Activity under redelivery, kill -9, retention and concurrent inserts (real processes)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import Any

import pytest
from redis.asyncio import Redis

from goldwire.protocol.keys import Keys
from tests.activity_log import DAY, MIN, Log, write
from tests.event_streams import deployment_streams, group_backlog
from tests.support import Activity, until
from tests.system.test_activity import get, metrics

pytestmark = pytest.mark.asyncio

NOW = int(time.time() * 1000)


def busy_log(n_conns: int, per_conn: int, start: int) -> Log:
    """Connections that connect, join a room, publish, leave and disconnect; times spread
    over the two hours after `start`, interleaved between connections."""
    log = Log()
    rng = random.Random(7)
    rooms = [f"doc:{i}" for i in range(25)]
    plans = []
    for c in range(n_conns):
        conn, user, room = f"c{c}", f"user{c % 40}", rooms[c % len(rooms)]
        t = start + rng.randrange(60 * MIN)
        plans.append((conn, user, room, t))
    for conn, user, room, t in plans:
        log.connect(t, conn, user)
        log.join(t + 1000, conn, room)
        for k in range(per_conn):
            log.publish(t + 2000 + k * 1000, conn, room)
        log.leave(t + 2000 + per_conn * 1000, conn, room)
        log.disconnect(t + 3000 + per_conn * 1000, conn)
    # Interleave connections as several gateways would, each connection still in order.
    by_conn: dict[str, list[dict[str, str]]] = {}
    for ev in log.events:
        by_conn.setdefault(ev["conn"], []).append(ev)
    queues = list(by_conn.values())
    mixed = []
    while queues:
        q = rng.choice(queues)
        mixed.append(q.pop(0))
        if not q:
            queues.remove(q)
    log.events = mixed
    return log


async def state(service: Activity, redis: Redis, prefix: str, users: list[str],
                rooms: list[str], start: int) -> dict[str, Any]:
    keys = Keys(prefix)
    s = await get(service, "/v1/analytics/summary", tenant="acme",
                  **{"from": start - DAY, "to": start + DAY})
    pipe = redis.pipeline(transaction=False)
    for u in users:
        pipe.zcard(keys.activity("acme", "user_history", u))
    for r in rooms:
        pipe.zcard(keys.activity("acme", "room_history", r))
    cards = await pipe.execute()
    summaries = [await get(service, f"/v1/activity/users/{u}/summary", tenant="acme",
                           **{"from": start - DAY, "to": start + DAY}) for u in users[:5]]
    return {"events": s["events"], "messages": s["messages"], "kinds": s["events_by_kind"],
            "top": s["top_rooms"][:5], "cards": cards,
            "users": [(x["events"], x["messages_sent"], x["time_in_rooms_ms"])
                      for x in summaries]}


def expected(log: Log, users: list[str], rooms: list[str], per_conn: int) -> dict[str, Any]:
    kinds = Counter(e["kind"] for e in log.events)
    by_user = Counter(e["user"] for e in log.events)
    by_room = Counter(e["room"] for e in log.events if e.get("room"))
    msgs = Counter(e["room"] for e in log.events if e["kind"] == "publish")
    conns_of = Counter(e["user"] for e in log.events if e["kind"] == "connect")
    top = sorted(msgs.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    return {"events": len(log.events), "messages": kinds["publish"], "kinds": dict(kinds),
            "top": [{"room": r, "messages": n} for r, n in top],
            "cards": [by_user[u] for u in users] + [by_room[r] for r in rooms],
            # each visit: join at t+1s, leave at t+(2+per_conn)s
            "users": [(by_user[u], conns_of[u] * per_conn, conns_of[u] * (1 + per_conn) * 1000)
                      for u in users[:5]]}


async def test_killed_mid_batch_nothing_lost_nothing_twice(redis_server, key_prefix) -> None:
    """Two kill -9s while a backlog is being recorded, then the whole log re-sent: the
    answers are exactly those of one clean pass."""
    redis = Redis.from_url(redis_server.url)
    start = (NOW // DAY - 1) * DAY + 10 * 3_600_000
    per_conn = 6
    log = busy_log(2500, per_conn, start)  # 25,000 events
    users = sorted({e["user"] for e in log.events})
    rooms = sorted({e["room"] for e in log.events if e.get("room")})
    await write(redis, key_prefix, log.events)
    settings = {"activity_batch": 1000, "activity_script_chunk": 50, "activity_claim_idle": 0.5,
                "activity_rollup_interval": 1, "activity_sweep_interval": 0}
    # Victims read small batches in many calls, so they are still busy when killed.
    slow = {**settings, "activity_batch": 100, "activity_script_chunk": 10}
    survivors = []
    try:
        for fraction in (0.2, 0.5):
            victim = Activity(redis_server.url, key_prefix, **slow).start()
            await until(lambda v=victim, f=fraction: metrics(v.metrics())["events_seen_total"]
                        >= f * len(log.events), timeout=60)
            victim.kill()
        final = Activity(redis_server.url, key_prefix, **settings).start()
        survivors.append(final)
        group = Keys(key_prefix).consumer_group("activity")

        async def drained() -> bool:
            return await group_backlog(redis, key_prefix, group) == (0, 0)

        await until(drained, timeout=60)
        m = metrics(final.metrics())
        assert m["stream_claimed_total"] > 0  # the victims' unacknowledged batches
        print(f"claimed {m['stream_claimed_total']:.0f}, "
              f"found already recorded {m['events_duplicate_total']:.0f}")
        want = expected(log, users, rooms, per_conn)
        async def caught_up() -> bool:  # roll-ups catch up within a few ticks
            return await state(final, redis, key_prefix, users, rooms, start) == want

        await until(caught_up, timeout=30, interval=0.2)
        # Every entry delivered again (the group rewound: redelivery of recorded, acknowledged
        # entries), then the whole log re-sent as new entries (a gateway re-sending).
        before = metrics(final.metrics())["events_duplicate_total"]
        for stream in (await deployment_streams(redis, key_prefix)).all():
            if await redis.exists(stream):
                await redis.xgroup_setid(stream, group, "0")
        await write(redis, key_prefix, log.events)
        await until(drained, timeout=60)
        m = metrics(final.metrics())
        assert m["events_duplicate_total"] - before == 2 * len(log.events)
        # Stays a sleep: it proves a roll-up tick (interval 1 s) changes nothing, so there is
        # no event to poll for.
        await asyncio.sleep(1.5)  # a roll-up tick
        assert await state(final, redis, key_prefix, users, rooms, start) == want
    finally:
        for s in survivors:
            s.terminate()
        await redis.aclose()


async def test_retention_trims_old_history_and_keeps_rollups(redis_server, key_prefix) -> None:
    redis = Redis.from_url(redis_server.url)
    log = Log()
    days = {10: (NOW // DAY - 10) * DAY, 5: (NOW // DAY - 5) * DAY, 1: (NOW // DAY - 1) * DAY}
    for ago, day in days.items():
        conn = f"c{ago}"
        log.connect(day + 3_600_000, conn, "ada")
        log.join(day + 3_601_000, conn, "doc:1")
        log.publish(day + 3_602_000, conn, "doc:1")
        log.disconnect(day + 3_603_000, conn)
    await write(redis, key_prefix, log.events)
    first = Activity(redis_server.url, key_prefix, activity_rollup_interval=1).start()
    try:
        await until(lambda: metrics(first.metrics())["events_recorded_total"]
                    == len(log.events))

        async def rolled() -> Any:
            s = await get(first, "/v1/analytics/summary", tenant="acme",
                          **{"from": days[10], "to": NOW})
            return s if s["events"] == 12 else None

        await until(rolled)
    finally:
        first.terminate()
    # The same data, now kept 7 days: the trim at start removes day -10's history only.
    second = Activity(redis_server.url, key_prefix, activity_retention_days=7).start()
    try:
        await until(lambda: metrics(second.metrics())["trims_total"] >= 1)
        assert metrics(second.metrics())["trimmed_entries_total"] == 4 + 2  # user + room entries
        items = (await get(second, "/v1/activity/users/ada", tenant="acme"))["items"]
        assert sorted({e["ts"] // DAY * DAY for e in items}) == [days[5], days[1]]
        assert len(items) == 8
        room = (await get(second, "/v1/activity/rooms/doc:1", tenant="acme"))["items"]
        assert len(room) == 4 and min(e["ts"] for e in room) >= days[5]
        s = await get(second, "/v1/analytics/summary", tenant="acme",
                      **{"from": days[10], "to": NOW})
        assert s["events"] == 12 and s["messages"] == 3  # roll-ups remain
        assert s["series"][0] == {"t": days[10], "events": 4, "messages": 1, "active_users": 1}
    finally:
        second.terminate()
        await redis.aclose()


async def test_pagination_is_stable_under_concurrent_inserts(redis_server, key_prefix) -> None:
    redis = Redis.from_url(redis_server.url)
    base = NOW - 3_600_000
    log = Log()
    log.connect(base, "p1", "pager")
    for i in range(300):  # groups of five share one millisecond: ties across pages
        log.add("status", base + 1000 + (i // 5), "p1", status="away")
    await write(redis, key_prefix, log.events)
    service = Activity(redis_server.url, key_prefix, activity_sweep_interval=0).start()
    try:
        await until(lambda: metrics(service.metrics())["events_recorded_total"] == 301)
        original = {e["id"] for e in log.events}
        stop = asyncio.Event()

        async def insert() -> None:  # newer events and late ones from the past, meanwhile
            n = 0
            while not stop.is_set():
                n += 1
                late = base + 1000 + random.randrange(60)
                log.add("status", NOW + n if n % 2 else late, "p1", status="busy")
                await write(redis, key_prefix, log.events[-1:])
                await asyncio.sleep(0.01)  # stays: paces the concurrent inserts

        writer = asyncio.create_task(insert())
        seen: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"tenant": "acme", "limit": 17}
            if cursor:
                params["cursor"] = cursor
            page = await get(service, "/v1/activity/users/pager", **params)
            seen += page["items"]
            cursor = page["next"]
            await asyncio.sleep(0.02)  # stays: paces paging so inserts land between pages
            if not cursor:
                break
        stop.set()
        await writer
        ids = [e["id"] for e in seen]
        assert len(ids) == len(set(ids)), "an entry appeared on two pages"
        assert original <= set(ids), "an entry that existed before paging was skipped"
        order = [(e["ts"], f'{{"id":"{e["id"]}"') for e in seen]
        assert order == sorted(order, reverse=True)  # so later inserts never entered a page
    finally:
        service.terminate()
        await redis.aclose()
