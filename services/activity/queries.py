"""Reading activity: history pages, analytics summaries, per-user summaries, live stats.

History is a sorted set per user and per room (score = event time, member = the
entry, `id` first: see events.py). Sorted sets rather than streams because events
arrive out of time order (several gateways, claimed batches) and a stream only appends in
id order; a sorted set takes an insert at any time, `ZADD NX` makes it the duplicate
check (scripts.py), and trimming by time is one `ZREMRANGEBYSCORE`. The cost is
memory (a skiplist entry per event instead of a packed stream node).

Pages are newest first, ordered by (ts, member) descending. A cursor is the (ts, id)
of the last entry returned; the next page starts strictly after it, so entries
inserted meanwhile never shift a page: newer ones are above the cursor, and an
entry with the cursor's ts sorts by its id (the member starts with `<id>\x1f`).

Analytics read roll-ups only: whole UTC days from day keys, the hours at the edges
of a window from hour keys, so 30 days touch about 80 buckets of 3 keys each.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from goldwire.activity.events import decode_entry, tie_key
from goldwire.protocol.keys import Keys

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
HOURLY_UP_TO = 48 * HOUR_MS  # windows up to this long get an hourly series
SCAN_CAP = 5000  # entries one history page may look through for a type filter
LIVE_WINDOW_S = 60
EM_MESSAGE = 2**24  # a user-day's `em` counter is events + EM_MESSAGE * messages


MIN_MS = 60_000
MAX_MINUTES = 180  # one request's minute series: three hours


class CursorError(ValueError):
    """A cursor that this service did not make."""


def encode_cursor(ts: int, event_id: str) -> str:
    raw = f"{ts}:{event_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, sep, event_id = raw.partition(":")
        if not sep or not event_id:
            raise ValueError(raw)
        return int(ts), event_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise CursorError("cursor: not a cursor from a previous page") from None


def _matches(doc: dict[str, Any], types: frozenset[str] | None) -> bool:
    return types is None or doc.get("kind") in types or doc.get("type") in types


async def history_page(redis: Redis, key: str, *, types: frozenset[str] | None = None,
                       since: int | None = None, until: int | None = None,
                       cursor: str | None = None,
                       limit: int = 50) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a history key, newest first: (entries, next cursor or None)."""
    hi: int | None = until
    below: bytes | None = None  # at score == hi, only members sorting before this
    if cursor is not None:
        c_ts, c_id = decode_cursor(cursor)
        if hi is None or c_ts <= hi:
            hi, below = c_ts, tie_key(c_id)
    lo: Any = "-inf" if since is None else since
    items: list[dict[str, Any]] = []
    scanned = 0
    step = min(max(limit * 2, 64), 1000)
    offset = 0  # only to step over more equal-time entries than one read returns
    last: tuple[int, str] | None = None
    while True:
        top: Any = "+inf" if hi is None else hi
        rows = await redis.zrange(key, top, lo, desc=True,
                                  byscore=True, offset=offset, num=step, withscores=True,
                                  score_cast_func=int)
        progressed = False
        for member, score in rows:
            if below is not None and score == hi and member >= below:
                continue  # at or above where the previous read stopped
            progressed = True
            scanned += 1
            doc = decode_entry(member)
            last = (score, doc["id"])
            # Go on strictly below this entry (not by offset: inserts would shift it).
            hi, below = score, member
            if not _matches(doc, types):
                continue
            if len(items) == limit:
                return items, encode_cursor(items[-1]["ts"], items[-1]["id"])
            items.append(doc)
        if len(rows) < step:
            return items, None  # the range is exhausted
        offset = 0 if progressed else offset + len(rows)
        if scanned >= SCAN_CAP and last is not None:
            # A sparse filter: hand back a short page and where to go on from.
            return items, encode_cursor(*last)


# --- time windows ----------------------------------------------------------------------
@dataclass(frozen=True)
class Unit:
    """One roll-up bucket: a whole UTC day ('d') or an hour ('h')."""

    kind: str
    n: int

    @property
    def start(self) -> int:
        return self.n * (DAY_MS if self.kind == "d" else HOUR_MS)


def window_units(start_ms: int, end_ms: int, days: bool = True) -> list[Unit]:
    """[start, end) widened to whole hours: whole days (when `days`) and the other hours."""
    h0 = start_ms // HOUR_MS
    h1 = -(-end_ms // HOUR_MS)
    units: list[Unit] = []
    h = h0
    while h < h1:
        if days and h % 24 == 0 and h + 24 <= h1:
            units.append(Unit("d", h // 24))
            h += 24
        else:
            units.append(Unit("h", h))
            h += 1
    return units


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Analytics:
    def __init__(self, redis: Redis, keys: Keys, exact_limit: int) -> None:
        self.redis = redis
        self.keys = keys
        self.exact_limit = exact_limit

    def _k(self, tenant: str, unit: Unit, what: str) -> str:
        parts = {"counts": ("hour", "day"), "rooms": ("rooms_hour", "rooms_day"),
                 "users": ("users_hour", "users_day"),
                 "hll": ("users_hour_hll", "users_day_hll")}[what]
        return self.keys.activity(tenant, parts[unit.kind == "d"], unit.n)

    async def summary(self, tenant: str, start_ms: int, end_ms: int, *, top: int = 10,
                      room: str | None = None) -> dict[str, Any]:
        """Totals, series, top rooms and distinct active users over [start, end)."""
        hourly = end_ms - start_ms <= HOURLY_UP_TO
        units = window_units(start_ms, end_ms, days=not hourly)
        buckets = self._buckets(units, hourly)
        overflow_key = self.keys.activity(tenant, "users_overflow")
        pipe = self.redis.pipeline(transaction=False)
        for u in units:
            pipe.hgetall(self._k(tenant, u, "counts"))
        if units:
            pipe.hmget(overflow_key, [f"{u.kind}{u.n}" for u in units])
        for u in units:
            pipe.scard(self._k(tenant, u, "users"))
        if room is not None:
            for u in units:
                pipe.zscore(self._k(tenant, u, "rooms"), room)
        first = await pipe.execute()
        n = len(units)
        counts = [{_s(k): int(v) for k, v in raw.items()} for raw in first[:n]]
        flags = first[n] if units else []
        exact = [not f for f in flags]
        cards = first[n + 1:2 * n + 1]
        room_counts = [int(x or 0) for x in first[2 * n + 1:]] if room is not None else []

        # Distinct users: per bucket, and over the whole window.
        pipe = self.redis.pipeline(transaction=False)
        for bucket in buckets:
            self._distinct(pipe, tenant, [units[i] for i in bucket], [exact[i] for i in bucket],
                           [cards[i] for i in bucket])
        self._distinct(pipe, tenant, units, exact, cards)
        room_keys = [self._k(tenant, u, "rooms") for u in units]
        if room_keys:
            pipe.zunion(room_keys, withscores=True)
        second = await pipe.execute()
        distinct = [self._distinct_value(r) for r in second[:len(buckets) + 1]]
        rooms = second[len(buckets) + 1] if room_keys else []

        totals: Counter[str] = Counter()
        for unit_counts in counts:
            totals.update(unit_counts)
        series = []
        for bucket, (users, users_exact) in zip(buckets, distinct, strict=False):
            c: Counter[str] = Counter()
            for i in bucket:
                c.update(counts[i])
            point: dict[str, Any] = {"t": units[bucket[0]].start, "events": _events(c),
                                     "messages": _messages(c), "active_users": users}
            if not users_exact:
                point["active_users_exact"] = False
            if room is not None:
                point["room_messages"] = sum(room_counts[i] for i in bucket)
            series.append(point)
        users, users_exact = distinct[-1]
        top_rooms = sorted(((_s(m), int(s)) for m, s in rooms), key=lambda x: (-x[1], x[0]))
        result: dict[str, Any] = {
            "tenant": tenant,
            "from": units[0].start if units else start_ms,
            "to": (units[-1].start + (DAY_MS if units[-1].kind == "d" else HOUR_MS))
            if units else end_ms,
            "resolution": "hour" if hourly else "day",
            "events": _events(totals),
            "messages": _messages(totals),
            "events_by_kind": _prefixed(totals, "k:"),
            "messages_by_type": _prefixed(totals, "t:"),
            "api": _prefixed(totals, "a:"),
            "active_users": users,
            "active_users_exact": users_exact,
            "top_rooms": [{"room": r, "messages": m} for r, m in top_rooms[:top]],
            "series": series,
        }
        if room is not None:
            result["room"] = {"room": room, "messages": sum(room_counts)}
        return result

    async def minutes(self, tenant: str, start_ms: int, end_ms: int,
                      room: str | None = None) -> dict[str, Any]:
        """Per-minute counts over [start, end) (at most MAX_MINUTES minutes; minute
        counters are kept two days): events, messages, messages by type and, with
        `room`, that room's messages."""
        first, last = start_ms // MIN_MS, (end_ms - 1) // MIN_MS
        minutes = list(range(max(first, last - MAX_MINUTES + 1), last + 1))
        pipe = self.redis.pipeline(transaction=False)
        for minute in minutes:
            pipe.hgetall(self.keys.activity(tenant, "minute", minute))
        raw = await pipe.execute()
        series = []
        for minute, fields in zip(minutes, raw, strict=True):
            c: Counter[str] = Counter({_s(k): int(v) for k, v in fields.items()})
            point: dict[str, Any] = {"t": minute * MIN_MS, "events": _events(c),
                                     "messages": _messages(c),
                                     "messages_by_type": _prefixed(c, "t:")}
            if room is not None:
                point["room_messages"] = c[f"r:{room}"]
            series.append(point)
        return {"tenant": tenant, "resolution": "minute", "series": series}

    @staticmethod
    def _buckets(units: list[Unit], hourly: bool) -> list[list[int]]:
        """Indexes of `units` per series point: each hour, or per UTC day."""
        if hourly:
            return [[i] for i in range(len(units))]
        by_day: dict[int, list[int]] = {}
        for i, u in enumerate(units):
            by_day.setdefault(u.n if u.kind == "d" else u.n // 24, []).append(i)
        return list(by_day.values())

    def _distinct(self, pipe: Any, tenant: str, units: list[Unit], exact: list[bool],
                  cards: list[int]) -> None:
        """Queue the distinct-user count of `units`: exact (SUNION) while every unit is
        exact and their sizes add up to at most the limit, else HyperLogLog."""
        if not units:
            pipe.echo("0|1")
        elif all(exact) and sum(cards) <= self.exact_limit:
            if len(units) == 1:
                pipe.echo(f"{cards[0]}|1")
            else:
                pipe.sunion([self._k(tenant, u, "users") for u in units])
        else:
            pipe.pfcount(*[self._k(tenant, u, "hll") for u in units])

    @staticmethod
    def _distinct_value(reply: Any) -> tuple[int, bool]:
        if isinstance(reply, set | list):
            return len(reply), True
        if isinstance(reply, bytes | str):
            value, _, exact = _s(reply).partition("|")
            return int(value), exact == "1"
        return int(reply), False

    async def user_summary(self, tenant: str, user: str, start_ms: int,
                           end_ms: int) -> dict[str, Any]:
        """Last active, rooms visited, time in rooms, messages sent over whole UTC days.

        Time in a room counts visits that ended (leave, disconnect, or a dead
        gateway's sweep), split over the days they covered.
        """
        d0, d1 = start_ms // DAY_MS, -(-end_ms // DAY_MS)
        pipe = self.redis.pipeline(transaction=False)
        for day in range(d0, d1):
            pipe.hgetall(self.keys.activity(tenant, "user_day", day, user))
        pipe.zscore(self.keys.activity(tenant, "last_active"), user)
        replies = await pipe.execute()
        totals: Counter[str] = Counter()
        for raw in replies[:-1]:
            totals.update({_s(k): int(v) for k, v in raw.items()})
        last_active = replies[-1]
        rooms: dict[str, dict[str, int]] = {}
        for name, value in totals.items():
            if name[:2] in ("j:", "t:"):
                entry = rooms.setdefault(name[2:], {"joins": 0, "time_ms": 0})
                entry["joins" if name[0] == "j" else "time_ms"] += value
        events, messages = totals["em"] % EM_MESSAGE, totals["em"] // EM_MESSAGE
        return {
            "tenant": tenant,
            "user": user,
            "from": d0 * DAY_MS,
            "to": d1 * DAY_MS,
            "last_active": int(last_active) if last_active is not None else None,
            "events": events,
            "messages_sent": messages,
            "rooms_visited": len(rooms),
            "time_in_rooms_ms": sum(r["time_ms"] for r in rooms.values()),
            "rooms": [{"room": r, **v} for r, v in
                      sorted(rooms.items(), key=lambda kv: (-kv[1]["time_ms"], kv[0]))],
        }

    async def live(self, tenant: str, now_ms: int | None = None,
                   top: int = 20) -> dict[str, Any]:
        """Connections, members per room and messages/s over the last minute (wall clock)."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        now_s = now // 1000
        seconds = [str(s) for s in range(now_s - LIVE_WINDOW_S, now_s)]
        pipe = self.redis.pipeline(transaction=False)
        pipe.hlen(self.keys.activity(tenant, "live_conns"))
        pipe.hlen(self.keys.activity(tenant, "live_users"))
        pipe.hgetall(self.keys.activity(tenant, "live_rooms"))
        pipe.hmget(self.keys.activity(tenant, "live_seconds"), seconds)
        conns, users, rooms_raw, per_second = await pipe.execute()
        rooms = sorted(((_s(r), int(n)) for r, n in rooms_raw.items()),
                       key=lambda x: (-x[1], x[0]))
        last_minute = sum(int(x) for x in per_second if x is not None)
        return {
            "tenant": tenant,
            "ts": now,
            "connections": conns,
            "users": users,
            "rooms": len(rooms),
            "members": {r: n for r, n in rooms[:top]},
            "messages_last_minute": last_minute,
            "messages_per_second": round(last_minute / LIVE_WINDOW_S, 3),
            "messages_last_second": int(per_second[-1] or 0) if per_second else 0,
        }


def _events(counts: Counter[str]) -> int:
    return sum(n for k, n in counts.items() if k.startswith("k:"))


def _messages(counts: Counter[str]) -> int:
    return counts["k:publish"] + counts["k:send"]


def _prefixed(counter: Counter[str], prefix: str) -> dict[str, int]:
    return {k[len(prefix):]: v for k, v in sorted(counter.items()) if k.startswith(prefix)}
