"""Every goldwire.store script, called through its named header, against a real Redis:
what it returns and what it leaves in Redis. The end-to-end tests cover them only
through gateways; these pin down each script's own contract (and run in a second)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from goldwire.protocol.frames import build_frame, room_frame_parts
from goldwire.protocol.keys import Keys
from goldwire.store.direct import DirectStore
from goldwire.store.inbox import Inbox
from goldwire.store.lua import BoundScript, bind, run_loading_scripts
from goldwire.store.presence_view import PresenceView
from goldwire.store.rooms import RoomStore
from goldwire.store.sessions import PreferencesConflict, SessionStore

T, U = "default", "u1"


@pytest.fixture
async def redis(redis_server: Any) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
def keys(key_prefix: str) -> Keys:
    return Keys(key_prefix)


class Listener:
    """A pub/sub subscriber: what the scripts PUBLISH, as a gateway would receive it."""

    def __init__(self, redis: aioredis.Redis, channel: str) -> None:
        self.pubsub = redis.pubsub()
        self.channel = channel

    async def __aenter__(self) -> Listener:
        await self.pubsub.subscribe(self.channel)
        await self.pubsub.get_message(timeout=1)  # the subscribe confirmation
        return self

    async def next(self) -> bytes:
        msg = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
        assert msg is not None, f"nothing published on {self.channel}"
        return msg["data"]

    async def __aexit__(self, *exc: object) -> None:
        await self.pubsub.aclose()


# --- rooms ------------------------------------------------------------------------------
async def test_room_publish_stores_publishes_and_dedupes(redis, keys) -> None:
    rooms = RoomStore(redis, keys, history_size=1000, history_ttl=60, idempotency_window=30)
    head, tail = room_frame_parts("document_update", "doc", {"v": 1})
    async with Listener(redis, keys.room_channel(T, "doc")) as live:
        offset, dup = await rooms.publish(T, "doc", head, tail, "k1")
        assert not dup
        frame = build_frame(head, offset.encode(), tail)
        assert await live.next() == offset.encode() + b" " + frame
        assert await rooms.publish(T, "doc", head, tail, "k1") == (offset, True)
        assert await redis.xlen(keys.history(T, "doc")) == 1
        assert await redis.hget(keys.room_meta(T, "doc"), "origin") == offset.encode()
        assert 0 < await redis.pttl(keys.history(T, "doc")) <= 60_000
        latest, frames = await rooms.recent(T, "doc", 10)
        assert (latest, frames) == (offset, [frame])


async def test_room_read_recovers_only_what_it_can_prove(redis, keys) -> None:
    rooms = RoomStore(redis, keys, history_size=3, history_ttl=60, idempotency_window=30)
    empty = await rooms.read(T, "r", "")
    assert (empty.latest, empty.recovered) == (b"0-0", False)
    assert empty.known_from  # an empty room remembers "complete since now"
    assert (await rooms.read(T, "r", empty.resume_offset())).recovered
    head, tail = room_frame_parts("m", "r", {})
    offsets = [(await rooms.publish(T, "r", head, tail, None))[0] for _ in range(3)]
    hist = await rooms.read(T, "r", offsets[0])
    assert hist.recovered and [o.decode() for o, _ in hist.entries] == offsets[1:]
    assert (await rooms.read(T, "r", offsets[-1])).entries == []
    assert not (await rooms.read(T, "r", "99999999999999-0")).recovered  # from the future
    for _ in range(200):  # trimmed past the first offset: no longer provable
        await rooms.publish(T, "r", head, tail, None)
    assert not (await rooms.read(T, "r", offsets[0])).recovered
    await redis.delete(keys.room_meta(T, "r"))  # a lost origin (flush, failover)
    assert not (await rooms.read(T, "r", offsets[-1])).recovered


async def test_direct_publish_claims_once(redis, keys) -> None:
    direct = DirectStore(redis, keys, idempotency_window=30)
    idem = keys.idempotency(T, "k")
    async with Listener(redis, keys.user_channel(T, U)) as live:
        assert await direct.publish(keys.user_channel(T, U), b"frame", idem) == (1, None)
        assert await live.next() == b"frame"
        assert await direct.publish(keys.user_channel(T, U), b"frame", idem) == (0, b"{}")
        await direct.remember_result(idem, {"delivered": 2})
        assert await direct.publish(keys.user_channel(T, U), b"frame", idem) == \
            (0, b'{"delivered": 2}')
    await redis.hset(keys.user_nodes(T, U), mapping={"n1": 2, "dead": 5})
    await redis.zadd(keys.nodes(), {"n1": 10**13, "dead": 1})
    assert await direct.user_deliveries(T, U) == 2


# --- presence view ----------------------------------------------------------------------
async def test_presence_view_takes_pending_changes_back(redis, keys) -> None:
    view = PresenceView(redis, keys)
    assert await view.read(T, "r") == (0, [])
    a, b, b2 = b'{"user":"a"}', b'{"user":"b"}', b'{"user":"b","status":"away"}'
    await redis.set(keys.presence_version(T, "r"), 7)
    await redis.hset(keys.presence_members(T, "r"), mapping={"a": a, "b": b2, "c": b'{"user":"c"}'})
    # b changed (was b) and c joined since version 7 was published
    await redis.hset(keys.presence_pending_diff(T, "r"), mapping={"b": b, "c": ""})
    version, members = await view.read(T, "r")
    assert version == 7 and sorted(members) == [a, b]
    await redis.script_flush()  # the view reloads its script and reads again
    assert (await view.read(T, "r"))[0] == 7


# --- sessions and preferences ------------------------------------------------------------
async def test_session_open_resume_event_revoke(redis, keys) -> None:
    store = SessionStore(redis, keys, timeout_hours=1)
    first = await store.open(T, U, None, "c1", "n1", device="laptop")
    assert not first.resumed
    other = await store.open(T, "u2", first.id, "c9", "n1")
    assert not other.resumed and other.id != first.id  # another user's id does not exist

    async def event(kind: str, **kw: Any) -> None:
        async def run() -> None:
            pipe = redis.pipeline(transaction=False)
            store.queue_event(pipe, kind, T, U, first.id, "c1", **kw)
            await pipe.execute()
        await run_loading_scripts(redis, store.event_scripts, run)

    await event("join", room="doc", offset="5-0")
    await event("join", room="doc", offset="3-0")  # never moves back
    await event("join", room="old", offset="1-0")
    await event("leave", room="old")
    await event("disconnect", offsets={"doc": "9-1", "never-joined": "1-0"})
    assert await store.set_state(T, U, first.id, {"tab": 2})
    again = await store.open(T, U, first.id, "c2", "n2")
    assert again.resumed and again.rooms == {"doc": "9-1"} and again.state == {"tab": 2}
    assert [s["id"] for s in await store.list_sessions(T, U)] == [first.id]
    existed, conns = await store.revoke(T, U, first.id)
    assert existed and conns == {"c2": "n2"}
    assert not (await store.open(T, U, first.id, "c3", "n3")).resumed  # the tombstone holds


async def test_sessions_expire_only_once_due(redis, keys) -> None:
    store = SessionStore(redis, keys, timeout_hours=1)
    info = await store.open(T, U, None, "c1", "n1")
    assert await store.expire_due() == 0
    await redis.zadd(keys.user_sessions(T, U), {info.id: 1})
    await redis.zadd(keys.session_expiry(), {f"{T}\t{U}\t{info.id}": 1})
    assert await store.expire_due() == 1
    assert not await redis.exists(keys.session(T, U, info.id))


async def test_preferences_are_versioned_and_pushed(redis, keys) -> None:
    store = SessionStore(redis, keys, timeout_hours=1)
    async with Listener(redis, keys.user_channel(T, U)) as live:
        assert await store.write_prefs(T, U, {"theme": "dark"}, 0) == 1
        pushed = json.loads(await live.next())
        assert pushed["data"] == {"kind": "preferences", "values": {"theme": "dark"}, "version": 1}
    with pytest.raises(PreferencesConflict) as stale:
        await store.write_prefs(T, U, {"theme": "light"}, 0)
    assert (stale.value.values, stale.value.version) == ({"theme": "dark"}, 1)
    assert await store.read_prefs(T, U) == ({"theme": "dark"}, 1)


# --- the inbox ----------------------------------------------------------------------------
async def test_inbox_notify_ack_and_unread(redis, keys) -> None:
    inbox = Inbox(redis, keys, inbox_size=100, inbox_retention_days=1, idempotency_window=30)
    async with Listener(redis, keys.user_channel(T, U)) as live:
        n1, dup, unread = await inbox.notify(T, U, {"text": "a"}, {"id": "bob"}, "k1")
        assert (dup, unread) == (False, 1)
        frame = json.loads(await live.next())
        assert frame["id"] == n1 and frame["unread"] == 1 and frame["from"] == {"id": "bob"}
        assert (await inbox.notify(T, U, {"text": "a"}, None, "k1"))[:2] == (n1, True)
        n2, _, _ = await inbox.notify(T, U, {"text": "b"})
        await live.next()
        n3, _, unread = await inbox.notify(T, U, {"text": "c"})
        await live.next()
        assert unread == 3
        assert await inbox.ack(T, U, ids=[n3]) == 2
        read = json.loads(await live.next())["data"]
        assert read == {"kind": "notifications_read", "upto": "0-0", "ids": [n3], "unread": 2}
        assert await inbox.ack(T, U, upto=n2) == 0
    page = await inbox.notifications(T, U, limit=2)
    assert [i["id"] for i in page["items"]] == [n3, n2] and page["next"] == n2
    assert all(i["read"] for i in page["items"]) and page["unread"] == 0


async def test_a_script_redis_forgot_is_loaded_again(redis, keys) -> None:
    script: BoundScript = bind(redis, "goldwire.store", "session_set_state.lua")
    await redis.script_flush()
    assert await script(session=keys.session(T, U, "none"), state="{}", now_ms=1) == 0
