"""The presence engine on a real Redis, driven with event logs: duplicates and any
order of delivery end in the state the log describes."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import re
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from goldwire.presence.engine import PresenceEngine
from goldwire.presence.events import GatewayEvent
from goldwire.protocol.channels import PresenceDiffNote, StatesReady, parse_node, parse_room
from goldwire.protocol.frames import state_frame
from goldwire.protocol.keys import Keys
from goldwire.protocol.messages import (
    Message,
    MessageType,
    PresenceDiff,
    PresenceMember,
    PresenceState,
)
from goldwire.store.lua import BoundScript
from goldwire.store.presence_view import PresenceView

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


# --- frames: one diff per room per batch ---------------------------------------------------
def follows_the_protocol(frame: dict, version: int) -> dict:
    """The contract: a presence frame is a `presence_update` Message whose data is a
    PresenceState or PresenceDiff (libs/protocol/messages.py) with no field the models
    do not name, at the version its channel message announced. Every frame the tests
    below see passes here."""
    message = Message.model_validate(frame)
    assert message.type is MessageType.PRESENCE_UPDATE and message.room
    model = {"state": PresenceState, "diff": PresenceDiff}[frame["data"]["kind"]]
    data = model.model_validate(message.data)
    assert set(message.data) <= set(model.model_fields), f"unnamed fields in {message.data}"
    members = data.members if isinstance(data, PresenceState) else \
        data.joins + data.updates + data.leaves
    for member, raw in zip(members, [m for f in ("members", "joins", "updates", "leaves")
                                     for m in frame["data"].get(f, [])], strict=True):
        assert set(raw) <= set(PresenceMember.model_fields), f"unnamed fields in {raw}"
        assert member.user.id
    assert data.version == version
    return frame["data"]


class Wire:
    """What a gateway would receive: every presence frame of a key prefix, in publish order
    (one subscriber connection, as a gateway has)."""

    def __init__(self, redis: aioredis.Redis, eng: PresenceEngine) -> None:
        self.redis, self.prefix, self.keys = redis, eng.keys.prefix, eng.keys
        self.pubsub = redis.pubsub()
        self.marks = 0

    async def start(self) -> Wire:
        await self.pubsub.psubscribe(self.prefix + ":*")
        return self

    async def drain(self) -> list[tuple]:
        """Frames published since the last drain: ("diff", room, version, data) and
        ("state", conn, room, version, data)."""
        self.marks += 1
        mark = f"{self.prefix}:mark:{self.marks}"
        await self.redis.publish(mark, "")
        out: list[tuple] = []
        deadline = time.monotonic() + 5
        while True:
            assert time.monotonic() < deadline, "the marker never arrived"
            msg = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if msg is None:  # a subscribe confirmation, or nothing yet
                continue
            channel, data = _s(msg["channel"]), msg["data"]
            if channel == mark:
                return out
            # Parsed as a gateway parses them (goldwire.protocol.channels): anything else
            # the scripts publish fails the test here.
            if channel.startswith(self.keys.node_channel("")):
                ready = parse_node(data)
                assert isinstance(ready, StatesReady), ready  # read them as a gateway does
                version, members = await read_state(self.redis, self.keys, ready.room)
                assert version >= ready.version
                frame = json.loads(state_frame(ready.room, version, members))
                out += [("state", conn, ready.room, version,
                         follows_the_protocol(frame, version)) for conn in ready.conns]
            else:
                diff = parse_room(data)
                assert isinstance(diff, PresenceDiffNote), diff
                parsed = json.loads(diff.frame)
                out.append(("diff", parsed["room"], diff.version,
                            follows_the_protocol(parsed, diff.version)))

    async def close(self) -> None:
        await self.pubsub.aclose()


async def read_state(redis: aioredis.Redis, keys: Keys, room: str) -> tuple[int, list[bytes]]:
    """What a gateway reads when presence announces a state (RedisBroker.read_presence)."""
    return await PresenceView(redis, keys).read("default", room)


def _s(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def ev(user: str, conn: str, seq: int, kind: str, **kw: object) -> GatewayEvent:
    return GatewayEvent(kind=kind, node="n1", conn=conn, seq=seq, tenant="default", user=user,
                        ts=1_000 + seq, name=user.title(), **kw)  # type: ignore[arg-type]


def ids(members: list[dict]) -> list[str]:
    return [m["user"]["id"] for m in members]


async def test_a_status_shows_in_the_rooms_of_every_remaining_tab(redis) -> None:
    eng = engine(redis)

    def ev(conn: str, seq: int, kind: str, **kw: object) -> GatewayEvent:
        return GatewayEvent(kind=kind, node="n", conn=conn, seq=seq, tenant="default",
                            user="ada", ts=seq, name="Ada", **kw)  # type: ignore[arg-type]

    async def status_in(room: str) -> list[str]:
        members = (await eng.room_members("default", [room]))[room]["members"]
        return [m["status"] for m in members]

    await eng.apply([ev("a", 1, "connect"), ev("a", 2, "join", room="doc:1"),
                     ev("a", 3, "join", room="doc:2"), ev("b", 1, "connect"),
                     ev("b", 2, "join", room="doc:2"), ev("b", 3, "join", room="doc:2")])
    rooms = eng.keys.user_rooms("default", "ada")
    assert await redis.hgetall(rooms) == {b"doc:1": b"1", b"doc:2": b"2"}  # b joined once
    await eng.apply([ev("a", 4, "leave", room="doc:2"), ev("b", 4, "status", status="busy"),
                     ev("a", 5, "status", status="busy")])
    assert await status_in("doc:1") == ["busy"] and await status_in("doc:2") == ["busy"]
    await eng.apply([ev("a", 6, "disconnect", rooms=("doc:1",)),
                     ev("b", 5, "status", status="away")])
    assert await status_in("doc:1") == [] and await status_in("doc:2") == ["away"]
    await eng.apply([ev("a", 6, "disconnect", rooms=("doc:1",))])  # redelivered: no 2nd count
    assert await redis.hgetall(rooms) == {b"doc:2": b"1"}
    await eng.apply([ev("b", 6, "disconnect", rooms=("doc:2",))])
    assert not await redis.exists(rooms)


async def test_a_batch_of_joins_is_one_diff_and_states_at_its_version(redis) -> None:
    eng = engine(redis)
    wire = await Wire(redis, eng).start()
    try:
        await eng.apply([ev("obs", "o", 1, "connect"), ev("obs", "o", 2, "join", room="doc:1")])
        (state, own_join) = await wire.drain()  # the observer's own join is a diff too
        assert state[0] == "state" and ids(state[4]["members"]) == ["obs"]
        v0 = state[3]
        assert own_join[:3] == ("diff", "doc:1", v0)
        batch = []
        for i in range(5):
            batch += [ev(f"u{i}", f"c{i}", 1, "connect"),
                      ev(f"u{i}", f"c{i}", 2, "join", room="doc:1")]
        changes = await eng.apply(batch)
        assert sorted(c.user for c in changes if c.kind == "room_join") == [
            f"u{i}" for i in range(5)]  # backends still get one change per member
        frames = await wire.drain()
        states = [f for f in frames if f[0] == "state"]
        (diff,) = [f for f in frames if f[0] == "diff"]
        assert frames[-1] == diff  # the joiners' states come first
        assert diff[2] == v0 + 1 == diff[3]["version"]
        assert ids(diff[3]["joins"]) == [f"u{i}" for i in range(5)]
        assert diff[3]["leaves"] == diff[3]["updates"] == []
        assert sorted(s[1] for s in states) == [f"c{i}" for i in range(5)]
        for _, _, room, version, data in states:  # the room after the batch, same version
            assert room == "doc:1" and version == data["version"] == v0 + 1
            assert sorted(ids(data["members"])) == ["obs"] + [f"u{i}" for i in range(5)]
        await eng.apply(batch)  # redelivered: nothing new, nothing published
        assert await wire.drain() == []
    finally:
        await wire.close()


async def test_each_user_once_with_their_final_view(redis) -> None:
    eng = engine(redis)
    wire = await Wire(redis, eng).start()
    try:
        await eng.apply([ev("stay", "s", 1, "connect"), ev("stay", "s", 2, "join", room="doc:1"),
                         ev("go", "g", 1, "connect"), ev("go", "g", 2, "join", room="doc:1"),
                         ev("flip", "f", 1, "connect"), ev("flip", "f", 2, "join", room="doc:1")])
        await wire.drain()
        await eng.apply([
            ev("brief", "b", 1, "connect"), ev("brief", "b", 2, "join", room="doc:1"),
            ev("late", "l", 1, "connect"), ev("late", "l", 2, "join", room="doc:1"),
            ev("brief", "b", 3, "leave", room="doc:1"),  # came and went
            ev("flip", "f", 3, "status", status="away"),
            ev("flip", "f", 4, "status", status="online"),  # changed and changed back
            ev("stay", "s", 3, "status", status="busy"),
            ev("stay", "s", 4, "status", status="away"),  # changed twice: the last counts
            ev("go", "g", 3, "disconnect", rooms=("doc:1",)),
            ev("new", "n", 1, "connect"), ev("new", "n", 2, "join", room="doc:1"),
            ev("new", "n", 3, "status", status="busy"),  # joined, then changed: a join
        ])
        frames = await wire.drain()
        (diff,) = [f[3] for f in frames if f[0] == "diff"]
        assert ids(diff["joins"]) == ["late", "new"]
        assert diff["joins"][1]["status"] == "busy"
        assert ids(diff["leaves"]) == ["go"]
        assert ids(diff["updates"]) == ["stay"] and diff["updates"][0]["status"] == "away"
        states = {f[1]: f[4] for f in frames if f[0] == "state"}
        assert set(states) == {"l", "n"}  # b left before the flush: no state for it
        for state in states.values():  # no ghost of "brief", "go" gone, final views
            assert sorted(ids(state["members"])) == ["flip", "late", "new", "stay"]
            assert {m["user"]["id"]: m["status"] for m in state["members"]}["stay"] == "away"
            assert state["version"] == diff["version"]
    finally:
        await wire.close()


def dies_before_its_flushes(redis: aioredis.Redis, eng: PresenceEngine) -> PresenceEngine:
    """An engine whose runs stop after their changes and before their flushes, as a
    process killed between the two would."""
    crashed = PresenceEngine(redis, eng.keys, grace_ms=0, tombstone_ttl=600)
    for attr, flag in (("_room", "ARGV[13]"), ("_status", "ARGV[5]")):
        script = getattr(crashed, attr).script
        source = script.source
        # The flushing call still returns the shape the engine reads, without the flush.
        flushing = re.compile(rf"if {re.escape(flag)} == '1' then\n  table.insert\(result, "
                              r"flush\(.*\)\)\n")
        assert len(flushing.findall(source)) == 1
        cut = flushing.sub(f"if {flag} == '1' then\n  table.insert(result, 0)\n", source)
        setattr(crashed, attr, BoundScript(dataclasses.replace(script, source=cut), redis))
    return crashed


async def test_a_crash_before_the_flush_loses_no_diff_and_doubles_none(redis) -> None:
    eng = engine(redis)
    wire = await Wire(redis, eng).start()
    try:
        await eng.apply([ev("obs", "o", 1, "connect"), ev("obs", "o", 2, "join", room="doc:1")])
        v0 = (await wire.drain())[0][3]
        batch = [ev("ada", "a", 1, "connect"), ev("ada", "a", 2, "join", room="doc:1")]
        crashed = dies_before_its_flushes(redis, eng)
        await crashed.apply(batch)  # state changed, nothing published
        assert await wire.drain() == []
        await eng.apply(batch)  # the redelivery: its events are no-ops, the flush is not
        frames = await wire.drain()
        assert [(f[0], f[1]) for f in frames] == [("state", "a"), ("diff", "doc:1")]
        assert ids(frames[1][3]["joins"]) == ["ada"] and frames[1][2] == v0 + 1
        await eng.apply(batch)  # a third delivery publishes nothing
        assert await wire.drain() == []

        # Left pending by one run, flushed by another batch on the room (any replica).
        await crashed.apply([ev("bob", "b", 1, "connect"), ev("bob", "b", 2, "join",
                                                             room="doc:1")])
        await eng.apply([ev("cy", "c", 1, "connect"), ev("cy", "c", 2, "join", room="doc:1")])
        frames = await wire.drain()
        (diff,) = [f[3] for f in frames if f[0] == "diff"]
        assert ids(diff["joins"]) == ["bob", "cy"]
        assert sorted(f[1] for f in frames if f[0] == "state") == ["b", "c"]

        # A status change whose run died before its flush: redelivered, the user's
        # aggregate is already stored, yet the room is called again and its flush
        # publishes the change (once).
        status = [ev("ada", "a", 3, "status", status="busy")]
        await crashed.apply(status)
        await eng.apply(status)
        (diff,) = [f[3] for f in await wire.drain()]
        assert ids(diff["updates"]) == ["ada"] and diff["updates"][0]["status"] == "busy"
        await eng.apply(status)
        assert await wire.drain() == []

        # A status change whose run died between its user side and its room side: the
        # redelivery still shows it in the room.
        late = ev("ada", "a", 4, "status", status="away")
        await eng._user(conns=eng.keys.user_presence("default", "ada"),
                        version=eng.keys.user_presence_version("default", "ada"),
                        conn_rooms=eng.keys.user_conn_rooms("default", "ada", "a"),
                        gone=eng.keys.user_conn_gone("default", "ada", "a"),
                        last_seen=eng.keys.user_last_seen("default", "ada"),
                        user_rooms=eng.keys.user_rooms("default", "ada"),
                        kind="status", conn="a", seq=4, status="away", meta="{}", room="",
                        ts=5, tomb_ttl=600)
        await eng.apply([late, ev("cy", "c", 3, "leave", room="doc:1")])
        (diff,) = [f[3] for f in await wire.drain()]
        assert ids(diff["updates"]) == ["ada"] and diff["updates"][0]["status"] == "away"
        assert ids(diff["leaves"]) == ["cy"] and diff["joins"] == []
    finally:
        await wire.close()


async def test_expired_leaves_are_one_diff_with_what_is_pending(redis) -> None:
    eng = PresenceEngine(redis, Keys("gwtest:" + uuid.uuid4().hex[:8]), grace_ms=1000,
                         tombstone_ttl=600)
    wire = await Wire(redis, eng).start()
    try:
        await eng.apply([e for i in range(3) for e in (
            ev(f"u{i}", f"c{i}", 1, "connect"), ev(f"u{i}", f"c{i}", 2, "join", room="doc:1"))])
        await wire.drain()
        await eng.apply([ev("u0", "c0", 3, "disconnect", rooms=("doc:1",)),
                         ev("u1", "c1", 3, "leave", room="doc:1")])
        assert await wire.drain() == []  # within the grace: nobody left yet
        changes = await eng.expire_due(now_ms=int(time.time() * 1000) + 60_000)
        assert sorted(c.user for c in changes) == ["u0", "u1"]
        (diff,) = [f[3] for f in await wire.drain()]
        assert ids(diff["leaves"]) == ["u0", "u1"] and diff["joins"] == diff["updates"] == []
    finally:
        await wire.close()


class _Client:
    """A client applying a state, then diffs newer than it, as upserts and deletes keyed by
    user id; checks each diff is exact (joins absent, leaves and updates present)."""

    def __init__(self, version: int, members: list[dict]) -> None:
        self.version = version
        self.view = {m["user"]["id"]: m for m in members}

    def apply(self, version: int, data: dict) -> None:
        if version <= self.version:  # the gateway drops what the state already holds
            return
        self.version = version
        for m in data["joins"]:
            assert m["user"]["id"] not in self.view, ("join of a present member", m)
            self.view[m["user"]["id"]] = m
        for m in data["updates"]:
            assert self.view.get(m["user"]["id"]) not in (None, m), ("empty update", m)
            self.view[m["user"]["id"]] = m
        for m in data["leaves"]:
            assert self.view.pop(m["user"]["id"], None) is not None, ("leave of absent", m)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("grace_ms", [0, 1])
async def test_state_and_diffs_show_every_client_the_room(redis, seed, grace_ms) -> None:
    """Shuffled, duplicated logs in batches: at most one diff per room per batch, and an
    observer there from the start as well as every joiner (from its state on) ends with
    exactly the room's members."""
    log = event_log(seed)
    rnd = random.Random(seed * 11)
    shuffled = log + rnd.sample(log, len(log) // 3)
    rnd.shuffle(shuffled)
    eng = PresenceEngine(redis, Keys("gwtest:" + uuid.uuid4().hex[:8]), grace_ms=grace_ms,
                         tombstone_ttl=600)
    wire = await Wire(redis, eng).start()
    observers = {room: _Client(0, []) for room in ROOMS}
    joiners: dict[tuple[str, str], _Client] = {}

    def deliver(frames: list[tuple]) -> None:
        rooms = [f[1] for f in frames if f[0] == "diff"]
        assert len(rooms) == len(set(rooms)), "more than one diff for a room in one batch"
        for frame in frames:
            if frame[0] == "state":
                _, conn, room, version, data = frame
                joiners[(conn, room)] = _Client(version, data["members"])
            else:
                _, room, version, data = frame
                observers[room].apply(version, data)
                for (_, r), client in joiners.items():
                    if r == room:
                        client.apply(version, data)

    try:
        for i in range(0, len(shuffled), 5):
            await eng.apply(shuffled[i:i + 5])
            deliver(await wire.drain())
        if grace_ms:
            await asyncio.sleep(0.01)
            await eng.expire_due(now_ms=int(time.time() * 1000) + 10_000)
            deliver(await wire.drain())
        members = await eng.room_members("default", ROOMS)
        for room in ROOMS:
            truth = {m["user"]["id"]: m for m in members[room]["members"]}
            assert observers[room].view == truth, room
            assert observers[room].version == members[room]["version"]
            present = {_s(c) for c in await redis.hkeys(eng.keys.presence_conns("default",
                                                                                 room))}
            for conn in present:
                assert joiners[(conn, room)].view == truth, (conn, room)
            assert not await redis.exists(eng.keys.presence_pending_diff("default", room),
                                          eng.keys.presence_pending_states("default", room))
    finally:
        await wire.close()


async def test_a_state_read_halfway_through_a_batch_is_the_published_room(redis) -> None:
    """A gateway may read a state while a batch is applied but not yet flushed: it must
    get the room as last published, not a ghost of a member the batch adds and removes."""
    eng = engine(redis)
    wire = await Wire(redis, eng).start()
    try:
        await eng.apply([ev("obs", "o", 1, "connect"), ev("obs", "o", 2, "join", room="doc:1"),
                         ev("ada", "a", 1, "connect"), ev("ada", "a", 2, "join", room="doc:1")])
        published = [f for f in await wire.drain() if f[0] == "diff"][-1]
        crashed = dies_before_its_flushes(redis, eng)  # changes stored, nothing flushed
        await crashed.apply([ev("ghost", "g", 1, "connect"), ev("ghost", "g", 2, "join",
                                                                room="doc:1"),
                             ev("ada", "a", 3, "status", status="busy"),
                             ev("bob", "b", 1, "connect"), ev("bob", "b", 2, "join",
                                                              room="doc:1")])
        stored = await redis.hkeys(eng.keys.presence_members("default", "doc:1"))
        assert sorted(_s(u) for u in stored) == ["ada", "bob", "ghost", "obs"]
        version, members = await read_state(redis, eng.keys, "doc:1")  # read now
        assert version == published[2]
        views = sorted((json.loads(m) for m in members), key=lambda m: m["user"]["id"])
        assert ids(views) == ["ada", "obs"] and views[0]["status"] == "online"
        # The batch ends: ghost left again. The flush's diff, applied to that state,
        # gives the room as stored; ghost is in neither.
        await eng.apply([ev("ghost", "g", 3, "leave", room="doc:1")])
        (diff,) = [f for f in await wire.drain() if f[0] == "diff"]
        assert diff[2] == version + 1
        assert ids(diff[3]["joins"]) == ["bob"] and ids(diff[3]["updates"]) == ["ada"]
        assert diff[3]["leaves"] == []
    finally:
        await wire.close()


async def test_a_sweep_disconnect_redelivered_after_a_crash_still_leaves(redis) -> None:
    """The sweep's disconnect names no rooms. If the run that applied its user side died
    before the room side, the redelivery must still find the rooms to leave."""
    eng = engine(redis)
    keys = eng.keys

    def ev(seq: int, kind: str, **kw: object) -> GatewayEvent:
        return GatewayEvent(kind=kind, node="dead", conn="c1", seq=seq, tenant="default",
                            user="zed", ts=seq, **kw)  # type: ignore[arg-type]

    await eng.apply([ev(1, "connect"), ev(2, "join", room="doc:9")])
    sweep = ev(2**50, "disconnect")
    # The crashed first run: only its user side happened.
    await eng._user(conns=keys.user_presence("default", "zed"),
                    version=keys.user_presence_version("default", "zed"),
                    conn_rooms=keys.user_conn_rooms("default", "zed", "c1"),
                    gone=keys.user_conn_gone("default", "zed", "c1"),
                    last_seen=keys.user_last_seen("default", "zed"),
                    user_rooms=keys.user_rooms("default", "zed"),
                    kind="disconnect", conn="c1", seq=sweep.seq, status="online", meta="{}",
                    room="", ts=5, tomb_ttl=600)
    await eng.apply([sweep], grace_ms=0)  # the redelivery
    assert (await eng.room_members("default", ["doc:9"]))["doc:9"]["members"] == []


async def test_each_flushed_room_observes_the_age_of_its_oldest_event(redis) -> None:
    """goldwire_presence_join_to_diff_seconds: once per room flushed by a batch, from that
    room's oldest event in the batch (event ts, ms) to the flush."""
    ages: list[float] = []
    eng = PresenceEngine(redis, Keys("gwtest:" + uuid.uuid4().hex[:8]), grace_ms=0,
                         tombstone_ttl=600, observe_diff_age=ages.append)
    now = int(time.time() * 1000)
    log: list[GatewayEvent] = []
    ada = _Conn(log, "ada", "n1.1")
    ada.ev("connect")
    ada.ev("join", room="doc:1")
    ada.ev("join", room="doc:2")
    log = [dataclasses.replace(ev, ts=now - 5000 + i * 1000) for i, ev in enumerate(log)]
    await eng.apply(log)
    assert len(ages) == 2  # doc:1 and doc:2, not one per event
    assert 4.0 <= max(ages) < 60 and 3.0 <= min(ages) < max(ages)
