"""Diff pacing: a big busy room gets fewer diffs, and no change is lost or delayed for good.

The pacer is pure bookkeeping (tested without Redis); the engine tests run on a
real Redis and check what observers receive; the last test runs the real
presence process and gateways with a tiny budget, so a 12-member room is paced.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from goldwire.presence.engine import PresenceEngine
from goldwire.presence.pacing import FORGET_AFTER, DiffPacer
from goldwire.protocol.keys import Keys
from tests.service.test_presence_engine import Wire, ev, ids
from tests.support import Client, Gateway, Presence, token

ROOM = ("default", "doc:1")


# --- the pacer alone ------------------------------------------------------------------------
def test_a_calm_room_flushes_at_once() -> None:
    pacer = DiffPacer(budget=1000, max_interval_ms=100)
    assert pacer.plan(ROOM, now=0).flush_now  # never flushed
    pacer.flushed(ROOM, now=0, size=50)  # 50 connections: 50 ms between diffs
    assert pacer.plan(ROOM, now=50).flush_now
    assert pacer.plan(("default", "other"), now=1).flush_now  # rooms are paced apart


def test_a_busy_room_waits_out_its_interval_once() -> None:
    pacer = DiffPacer(budget=1000, max_interval_ms=100)
    pacer.flushed(ROOM, now=1000, size=50)
    first = pacer.plan(ROOM, now=1010)
    assert not first.flush_now and first.index_due == 1051  # indexed once, after 50 ms
    again = pacer.plan(ROOM, now=1020)
    assert not again.flush_now and again.index_due is None  # rides on the same flush
    assert pacer.next_due() is None  # not armed until its index is written
    pacer.indexed([ROOM])
    assert pacer.next_due() == 1051
    assert pacer.take_due(1050) == [] and pacer.take_due(1051) == [(ROOM, 1051)]
    assert pacer.next_due() is None
    assert not pacer.plan(ROOM, now=1060).flush_now  # the deferred flush counted as a flush


def test_the_interval_grows_with_the_room_up_to_the_cap() -> None:
    pacer = DiffPacer(budget=50_000, max_interval_ms=50)
    pacer.flushed(ROOM, now=0, size=10)
    assert pacer.interval_ms(ROOM) == pytest.approx(0.2)
    pacer.flushed(ROOM, now=0, size=1000)
    assert pacer.interval_ms(ROOM) == pytest.approx(20)
    pacer.flushed(ROOM, now=0, size=100_000)
    assert pacer.interval_ms(ROOM) == 50


def test_calm_rooms_are_forgotten_and_busy_ones_not_rescanned_per_flush() -> None:
    pacer = DiffPacer(budget=1000, max_interval_ms=100)
    for i in range(FORGET_AFTER):
        pacer.flushed(("default", f"old{i}"), now=0, size=50)
    pacer.flushed(ROOM, now=1000, size=50)  # one over: the calm ones go
    assert len(pacer._last_flush) == 1 and not pacer.plan(ROOM, now=1001).flush_now
    for i in range(FORGET_AFTER + 1):  # all busy: one scan, then none until twice as many
        pacer.flushed(("default", f"busy{i}"), now=2000, size=50)
    assert pacer._forget_at == 2 * FORGET_AFTER
    assert len(pacer._last_flush) == FORGET_AFTER + 1  # busy rooms are all remembered


def test_a_failed_write_forgets_its_deferral_and_zero_budget_never_paces() -> None:
    pacer = DiffPacer(budget=1000, max_interval_ms=100)
    pacer.flushed(ROOM, now=0, size=50)
    assert pacer.plan(ROOM, now=1).index_due is not None
    pacer.not_indexed([ROOM])  # the batch failed; it is retried and plans again
    assert pacer.plan(ROOM, now=2).index_due is not None
    off = DiffPacer(budget=0, max_interval_ms=100)
    off.flushed(ROOM, now=0, size=10_000)
    assert off.plan(ROOM, now=0).flush_now


# --- the engine on a real Redis -------------------------------------------------------------
@pytest.fixture
async def redis(redis_server) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


def now_ms() -> int:
    return int(time.time() * 1000)


async def fill_room(eng: PresenceEngine, wire: Wire, members: int) -> None:
    await eng.apply([e for i in range(members) for e in (
        ev(f"m{i}", f"c{i}", 1, "connect"), ev(f"m{i}", f"c{i}", 2, "join", room="doc:1"))])
    (diff,) = [f[3] for f in await wire.drain() if f[0] == "diff"]
    assert len(diff["joins"]) == members


async def test_joins_into_a_paced_room_arrive_together_after_the_interval(redis) -> None:
    pacer = DiffPacer(budget=1000, max_interval_ms=500)  # 40 connections: 40 ms apart
    eng = PresenceEngine(redis, Keys("gwtest:" + uuid.uuid4().hex[:8]), grace_ms=0,
                         tombstone_ttl=600, pacer=pacer)
    wire = await Wire(redis, eng).start()
    try:
        await fill_room(eng, wire, 40)
        for i in range(5):  # five quick batches of one join each
            await eng.apply([ev(f"late{i}", f"l{i}", 1, "connect"),
                             ev(f"late{i}", f"l{i}", 2, "join", room="doc:1")])
        assert [f for f in await wire.drain() if f[0] == "diff"] == []  # held back
        due = pacer.next_due()
        assert due is not None and due - now_ms() <= 40
        assert eng.flush_deferred.is_set()
        # Stays a sleep: the test plays the service's timer, which fires at `due`.
        await asyncio.sleep(max(0, due - now_ms()) / 1000)
        now = now_ms()
        await eng.flush_paced(pacer.take_due(now), now)  # what the service's timer does
        assert await redis.zcard(eng.keys.presence_due()) == 0
        frames = await wire.drain()
        (diff,) = [f[3] for f in frames if f[0] == "diff"]
        assert ids(diff["joins"]) == [f"late{i}" for i in range(5)]
        states = [f for f in frames if f[0] == "state"]
        assert sorted(s[1] for s in states) == [f"l{i}" for i in range(5)]
        assert all(len(s[4]["members"]) == 45 and s[3] == diff["version"] for s in states)
    finally:
        await wire.close()


async def test_a_deferred_flush_survives_the_process_that_deferred_it(redis) -> None:
    keys = Keys("gwtest:" + uuid.uuid4().hex[:8])
    paced = PresenceEngine(redis, keys, grace_ms=0, tombstone_ttl=600,
                           pacer=DiffPacer(budget=1000, max_interval_ms=500))
    wire = await Wire(redis, paced).start()
    try:
        await fill_room(paced, wire, 40)
        await paced.apply([ev("late", "l", 1, "connect"), ev("late", "l", 2, "join",
                                                              room="doc:1")])
        assert [f for f in await wire.drain() if f[0] == "diff"] == []
        del paced  # dies before its deferred flush: the due set still knows
        other = PresenceEngine(redis, keys, grace_ms=0, tombstone_ttl=600)
        assert await other.expire_due(now_ms()) == []  # not due yet
        await asyncio.sleep(0.06)  # stays: the clock must pass the deferral's due time
        await other.expire_due(now_ms())  # what the sweeper's job does every second
        (diff,) = [f[3] for f in await wire.drain() if f[0] == "diff"]
        assert ids(diff["joins"]) == ["late"]
        assert await redis.zcard(keys.presence_due()) == 0
    finally:
        await wire.close()


# --- end to end: a paced room over real gateways --------------------------------------------
@pytest.fixture
def paced_stack(redis_server, key_prefix) -> Iterator[tuple[Gateway, Gateway, Presence]]:
    gw1 = Gateway(redis_server.url, key_prefix).start()
    gw2 = Gateway(redis_server.url, key_prefix).start()
    # 200 frame writes/s per room: a room of 12 connections waits 60 ms between diffs.
    presence = Presence(redis_server.url, key_prefix, presence_diff_budget=200,
                        presence_diff_max_interval=1.0, presence_leave_grace=0).start()
    yield gw1, gw2, presence
    for proc in (gw1, gw2, presence):
        proc.terminate()


async def test_every_member_sees_the_exact_room_when_diffs_are_paced(paced_stack) -> None:
    gw1, gw2, presence = paced_stack
    room = "doc:" + uuid.uuid4().hex[:6]
    clients = []
    for i in range(12):  # join one after another, as fast as they can
        clients.append(await Client.open((gw1, gw2)[i % 2].url, token(f"u{i}", name=f"U{i}"),
                                         rooms=[{"room": room}]))
    await clients[5].close()  # and one leaves while diffs are held back
    expected = {f"u{i}" for i in range(12)} - {"u5"}
    observer = clients[0]
    view: dict[str, dict] = {}
    diffs = 0
    deadline = time.monotonic() + 10
    while set(view) != expected:
        assert time.monotonic() < deadline, f"observer sees {sorted(view)}"
        data = (await observer.recv_type("presence_update", timeout=5))["data"]
        if data["kind"] == "state":
            view = {m["user"]["id"]: m for m in data["members"]}
            continue
        diffs += 1
        view.update({m["user"]["id"]: m for m in data["joins"] + data["updates"]})
        for m in data["leaves"]:
            view.pop(m["user"]["id"])
    assert diffs < 11  # 11 joins and a leave came in fewer diffs
    for client in clients[1:]:  # every other member converges on the same room
        if client is clients[5]:
            continue
        members: dict[str, dict] = {}
        while set(members) != expected:
            data = (await client.recv_type("presence_update", timeout=5))["data"]
            if data["kind"] == "state":
                members = {m["user"]["id"]: m for m in data["members"]}
                continue
            members.update({m["user"]["id"]: m for m in data["joins"] + data["updates"]})
            for m in data["leaves"]:
                members.pop(m["user"]["id"])
    async with presence.api() as http:  # held back and flushed by the process's own timer
        metrics = (await http.get("/metrics")).text
    paced = [line for line in metrics.splitlines()
             if line.startswith("goldwire_presence_paced_flushes_total ")]
    assert paced and float(paced[0].split()[1]) >= 1
    for client in clients:
        if client is not clients[5]:
            await client.close()
