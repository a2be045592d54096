"""One bad record in the event stream: set aside, never the end of a consumer.

A record with bytes that are not UTF-8 used to raise in the presence and sessions
handlers, which ended their consumer loops for good while /healthz said 200. Now it
is a dead letter (`<prefix>:events:dead`), acknowledged, and the records after it
are handled. And when a loop does die (here: the dead-letter key is not a stream, so
a failed record can be neither handled nor set aside), /healthz and /readyz are 503.
"""

from __future__ import annotations

import httpx
import pytest
from redis.asyncio import Redis

from goldwire.protocol.keys import Keys
from tests.event_streams import group_backlog, stream_of
from tests.support import Activity, Client, Gateway, Presence, Sessions, token, until

pytestmark = pytest.mark.asyncio

BAD = {"id": "bad-1", "kind": "join", "node": "n-bad", "conn": "c-bad", "seq": "1",
       "tenant": "default", "user": b"\xff\xfe", "room": "doc:dl", "ts": "1",
       "session": "s-bad"}


async def status(url: str) -> int:
    async with httpx.AsyncClient() as http:
        return (await http.get(url)).status_code


async def test_a_bad_record_is_dead_lettered_and_the_stream_goes_on(redis_server,
                                                                   key_prefix) -> None:
    keys = Keys(key_prefix)
    procs = [Presence(redis_server.url, key_prefix).start(),
             Sessions(redis_server.url, key_prefix).start(),
             Activity(redis_server.url, key_prefix).start()]
    gateway = Gateway(redis_server.url, key_prefix).start()
    presence, sessions, activity = procs
    redis = Redis.from_url(redis_server.url)
    try:
        ada = await Client.open(gateway.url, token("ada"))
        bad_stream = await stream_of(redis, key_prefix, BAD)
        bad_id = (await redis.xadd(bad_stream, BAD)).decode()
        await ada.ok("join", room="doc:dl")  # good records, after the bad one
        await ada.recv_type("presence_update")  # presence handled the join

        async with presence.api() as http:
            got = (await http.get("/v1/presence/rooms/doc:dl")).json()
            assert [m["user"]["id"] for m in got["members"]] == ["ada"], got
        async with sessions.api() as http:
            sid = ada.connected["data"]["session"]["id"]

            async def session_has_room() -> bool:
                got = (await http.get("/v1/users/ada/bootstrap", params={"session": sid}))
                return [r["room"] for r in got.json()["session"]["rooms"]] == ["doc:dl"]
            await until(session_has_room, timeout=15, interval=0.1)
        async with activity.api() as http:
            async def recorded() -> bool:
                got = await http.get("/v1/activity/rooms/doc:dl")
                assert got.status_code == 200, got.text  # the bad bytes never got in
                return [i["user"] for i in got.json()["items"]] == ["ada"]
            await until(recorded, timeout=15, interval=0.1)

        dead = await redis.xrange(keys.dead_letters())
        groups = {f[b"dead_group"].decode(): f for _, f in dead}
        assert set(groups) == {keys.consumer_group("presence"), keys.consumer_group("sessions")}
        for fields in groups.values():
            assert fields[b"dead_id"].decode() == bad_id
            assert fields[b"dead_stream"].decode() == bad_stream
            assert fields[b"user"] == b"\xff\xfe" and fields[b"kind"] == b"join"
            assert b"UnicodeDecodeError" in fields[b"dead_error"]
        for proc in procs:
            for route in ("/healthz", "/readyz"):
                assert await status(proc.http + route) == 200, (proc.kind, route)
        for proc, count in ((presence, 1), (sessions, 1), (activity, 0)):
            assert f"stream_dead_letters_total {count}" in proc.metrics(), proc.kind
        for group in ("presence", "sessions", "activity"):  # all acknowledged
            pending, _ = await group_backlog(redis, key_prefix, keys.consumer_group(group))
            assert pending == 0, (group, pending)
        await ada.close()
    finally:
        gateway.terminate()
        for proc in procs:
            proc.terminate()
        await redis.aclose()


async def test_a_dead_consumer_loop_fails_health(redis_server, key_prefix) -> None:
    keys = Keys(key_prefix)
    redis = Redis.from_url(redis_server.url)
    presence = Presence(redis_server.url, key_prefix).start()
    try:
        assert await status(presence.http + "/healthz") == 200
        await redis.set(keys.dead_letters(), "not a stream")  # where failures would go
        await redis.xadd(await stream_of(redis, key_prefix, BAD), BAD)

        async def unhealthy() -> bool:
            return await status(presence.http + "/healthz") == 503
        await until(unhealthy, timeout=15, interval=0.1)
        assert await status(presence.http + "/readyz") == 503
        assert presence.proc is not None and presence.proc.poll() is None  # it answers,
        # but consumes nothing: the orchestrator has to restart it.
    finally:
        presence.terminate()
        await redis.aclose()


async def test_jobs_skip_a_bad_entry_and_do_the_rest(redis_server, key_prefix) -> None:
    """A malformed pending-leave or session-expiry entry used to fail its job at every
    tick, so no leave expired and no session ended; now it is dropped and logged."""
    keys = Keys(key_prefix)
    redis = Redis.from_url(redis_server.url)
    timeout = {"session_timeout_hours": 1.5 / 3600}  # 1.5 s
    presence = Presence(redis_server.url, key_prefix, presence_leave_grace=0.3).start()
    sessions = Sessions(redis_server.url, key_prefix, sessions_cleanup_interval=1,
                        **timeout).start()
    gateway = Gateway(redis_server.url, key_prefix, **timeout).start()
    try:
        await redis.zadd(keys.presence_due(), {b"no-tabs": 1, b"\xff\t\xfe\t1": 1})
        await redis.zadd(keys.session_expiry(), {b"only\tone-tab": 1, b"\xff": 1})
        observer = await Client.open(gateway.url, token("obs"), rooms=[{"room": "doc:j"}])
        await observer.recv_type("presence_update")
        eve = await Client.open(gateway.url, token("eve"), rooms=[{"room": "doc:j"}])
        await eve.close()  # her leave waits 0.3 s, then the expiry job announces it

        async def eve_left() -> bool:
            async with presence.api() as http:
                got = (await http.get("/v1/presence/rooms/doc:j")).json()
            return [m["user"]["id"] for m in got["members"]] == ["obs"]
        await until(eve_left, timeout=15, interval=0.1)

        async def eve_expired() -> bool:
            async with sessions.api() as http:
                return (await http.get("/v1/users/eve/sessions")).json()["sessions"] == []
        await until(eve_expired, timeout=15, interval=0.1)
        assert await redis.zrange(keys.presence_due(), 0, -1) == []
        assert await redis.zscore(keys.session_expiry(), b"\xff") is None
        await observer.close()
    finally:
        gateway.terminate()
        sessions.terminate()
        presence.terminate()
        await redis.aclose()
