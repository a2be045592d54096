"""The presence engine on a real Redis, driven with event logs: duplicates and any
order of delivery end in the state the log describes."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from goldwire.presence.engine import PresenceEngine
from goldwire.presence.events import GatewayEvent
from goldwire.protocol.keys import Keys

pytestmark = pytest.mark.asyncio

ROOMS = ("doc:1", "doc:2", "doc:3")


@pytest.fixture
async def redis(redis_server) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


def engine(redis: aioredis.Redis) -> PresenceEngine:
    return PresenceEngine(redis, Keys("gwtest:" + uuid.uuid4().hex[:8]), grace_ms=0,
                          tombstone_ttl=600)


class _Conn:
    """One connection's events, numbered as the gateway numbers them."""

    def __init__(self, log: list[GatewayEvent], user: str, conn: str) -> None:
        self.log, self.user, self.conn, self.seq = log, user, conn, 0

    def ev(self, kind: str, **kw: object) -> None:
        self.seq += 1
        self.log.append(GatewayEvent(
            kind=kind, node="n1", conn=self.conn, seq=self.seq, tenant="default",
            user=self.user, ts=1_000_000 + len(self.log) * 10, name=self.user.upper(),
            **kw))  # type: ignore[arg-type]


def event_log(seed: int) -> list[GatewayEvent]:
    """A plausible life of 6 users over 10 connections: connect, joins, status changes,
    leaves; most connections disconnect, some stay."""
    rnd = random.Random(seed)
    log: list[GatewayEvent] = []
    for c in range(10):
        conn = _Conn(log, f"u{c % 6}", f"n1.{c}")
        conn.ev("connect")
        joined: list[str] = []
        for _ in range(rnd.randint(1, 5)):
            action = rnd.choice(["join", "join", "leave", "status"])
            if action == "join":
                room = rnd.choice([r for r in ROOMS if r not in joined] or ["doc:1"])
                if room not in joined:
                    joined.append(room)
                    conn.ev("join", room=room)
            elif action == "leave" and joined:
                conn.ev("leave", room=joined.pop(rnd.randrange(len(joined))))
            elif action == "status":
                conn.ev("status", status=rnd.choice(["away", "busy", "online"]),
                        meta=f'{{"device": "d{c}"}}')
        if rnd.random() < 0.6:
            conn.ev("disconnect", rooms=tuple(joined))
    return log


async def snapshot(eng: PresenceEngine) -> dict:
    rooms = await eng.room_members("default", ROOMS)
    users = {f"u{i}": await eng.user_status("default", f"u{i}") for i in range(6)}
    for u in users.values():
        u.pop("last_seen")
    return {"rooms": {r: v["members"] for r, v in rooms.items()}, "users": users}


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_shuffled_and_duplicated_log_ends_in_the_same_state(redis, seed) -> None:
    log = event_log(seed)
    in_order = engine(redis)
    await in_order.apply(log)
    expected = await snapshot(in_order)
    assert any(expected["rooms"].values()), "the log should leave someone present"

    rnd = random.Random(seed * 7)
    shuffled = log + rnd.sample(log, len(log) // 3)  # a third of the events twice
    rnd.shuffle(shuffled)
    messy = engine(redis)
    for i in range(0, len(shuffled), 7):  # in batches, like a consumer
        await messy.apply(shuffled[i:i + 7])
    assert await snapshot(messy) == expected


async def test_two_tabs_then_status_is_the_most_present(redis) -> None:
    eng = engine(redis)

    def ev(conn: str, seq: int, kind: str, **kw: object) -> GatewayEvent:
        return GatewayEvent(kind=kind, node="n", conn=conn, seq=seq, tenant="default",
                            user="ada", ts=seq, name="Ada", **kw)  # type: ignore[arg-type]

    await eng.apply([ev("a", 1, "connect"), ev("a", 2, "join", room="doc:1"),
                     ev("b", 1, "connect"), ev("b", 2, "join", room="doc:1")])
    (member,) = (await eng.room_members("default", ["doc:1"]))["doc:1"]["members"]
    assert member["connections"] == 2 and member["status"] == "online"
    await eng.apply([ev("a", 3, "status", status="away")])
    assert (await eng.user_status("default", "ada"))["status"] == "online"  # b still online
    await eng.apply([ev("b", 3, "status", status="busy")])
    assert (await eng.user_status("default", "ada"))["status"] == "busy"  # busy beats away
    (member,) = (await eng.room_members("default", ["doc:1"]))["doc:1"]["members"]
    assert member["status"] == "busy"
    changes = await eng.apply([ev("a", 4, "disconnect", rooms=("doc:1",))])
    (member,) = (await eng.room_members("default", ["doc:1"]))["doc:1"]["members"]
    assert member["connections"] == 1 and changes == []
    changes = await eng.apply([ev("b", 4, "disconnect", rooms=("doc:1",))])
    assert {c.kind for c in changes} == {"room_leave", "user_offline"}
    status = await eng.user_status("default", "ada")
    assert status["status"] == "offline" and status["last_seen"] == 4
    assert (await eng.room_members("default", ["doc:1"]))["doc:1"]["members"] == []
