"""Presence end to end: real gateways, real presence processes, real sockets."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from goldwire.protocol.keys import Keys
from tests.support import Client, Gateway, Presence, token, until

pytestmark = pytest.mark.asyncio


@pytest.fixture
def stack(data_redis, key_prefix) -> Iterator[tuple[Gateway, Gateway, Presence]]:
    """On a plain Redis and on the 3-master cluster (tests/conftest.py `data_redis`)."""
    gw1 = Gateway(data_redis.url, key_prefix).start()
    gw2 = Gateway(data_redis.url, key_prefix).start()
    presence = Presence(data_redis.url, key_prefix, presence_leave_grace=1.5).start()
    yield gw1, gw2, presence
    for proc in (gw1, gw2, presence):
        proc.terminate()


def room() -> str:
    return "doc:" + uuid.uuid4().hex[:6]


async def next_presence(client: Client, timeout: float = 5) -> dict:
    return (await client.recv_type("presence_update", timeout=timeout))["data"]


async def no_presence_within(client: Client, seconds: float) -> None:
    """Nothing presence-related arrives for `seconds` (proved by a ping afterwards)."""
    await asyncio.sleep(seconds)  # stays: proving that nothing arrives means waiting it out
    await client.ok("ping")
    assert [m for m in client._backlog if m["type"] == "presence_update"] == []


async def test_state_first_then_diffs_and_two_tabs(stack) -> None:
    gw1, gw2, _ = stack
    r = room()
    observer = await Client.open(gw2.url, token("obs", name="Obs"), rooms=[{"room": r}])
    state = await next_presence(observer)
    assert state["kind"] == "state" and [m["user"]["id"] for m in state["members"]] == ["obs"]

    tab1 = await Client.open(gw1.url, token("ada", name="Ada"), rooms=[{"room": r}])
    first = await next_presence(tab1)
    assert first["kind"] == "state"  # the joiner's first presence frame is the full state
    assert {m["user"]["id"] for m in first["members"]} == {"obs", "ada"}
    diff = await next_presence(observer)
    assert diff["kind"] == "diff" and [m["user"]["id"] for m in diff["joins"]] == ["ada"]

    tab2 = await Client.open(gw2.url, token("ada", name="Ada"), rooms=[{"room": r}])
    diff = await next_presence(observer)
    assert diff["joins"] == [] and diff["updates"][0]["connections"] == 2

    await tab1.close()
    diff = await next_presence(observer)
    assert diff["updates"][0]["connections"] == 1 and diff["leaves"] == []

    await tab2.ok("status", status="away", meta={"device": "phone"})
    diff = await next_presence(observer)  # a status change is an update, never leave+join
    assert diff["joins"] == diff["leaves"] == []
    assert diff["updates"][0]["status"] == "away"
    assert diff["updates"][0]["meta"] == {"device": "phone"}

    await tab2.close()
    diff = await next_presence(observer)  # after the grace period
    assert [m["user"]["id"] for m in diff["leaves"]] == ["ada"]
    _, _, presence = stack
    async with presence.api() as http:
        status = (await http.get("/v1/presence/users/ada")).json()
    assert status["status"] == "offline" and status["last_seen"] > 0
    await observer.close()


async def test_refresh_within_grace_is_invisible(stack) -> None:
    gw1, gw2, _ = stack
    r = room()
    observer = await Client.open(gw2.url, token("obs2"), rooms=[{"room": r}])
    await next_presence(observer)
    tab = await Client.open(gw1.url, token("bob"), rooms=[{"room": r}])
    assert (await next_presence(observer))["joins"][0]["user"]["id"] == "bob"
    await tab.close()
    again = await Client.open(gw2.url, token("bob"), rooms=[{"room": r}])  # the refresh
    await no_presence_within(observer, 2.5)  # longer than the 1.5 s grace
    await again.close()
    await observer.close()


async def test_a_killed_gateways_members_leave_within_ten_seconds(stack) -> None:
    gw1, gw2, presence = stack
    r = room()
    observer = await Client.open(gw2.url, token("watcher"), rooms=[{"room": r}])
    await next_presence(observer)
    doomed = [await Client.open(gw1.url, token(f"m{i}"), rooms=[{"room": r}])
              for i in range(50)]
    joined: set[str] = set()
    while len(joined) < 50:
        joined |= {m["user"]["id"] for m in (await next_presence(observer))["joins"]}
    gw1.kill()
    killed_at = time.monotonic()
    left: set[str] = set()
    while len(left) < 50:
        diff = await next_presence(observer, timeout=15)
        left |= {m["user"]["id"] for m in diff["leaves"]}
    elapsed = time.monotonic() - killed_at
    async with presence.api() as http:
        members = (await http.get(f"/v1/presence/rooms/{r}")).json()["members"]
    assert [m["user"]["id"] for m in members] == ["watcher"]
    print(f"ghosts removed {elapsed:.1f}s after kill -9")
    assert elapsed < 10, f"ghosts stayed {elapsed:.1f}s"  # the product promise, not a benchmark
    assert left == joined
    del doomed
    await observer.close()


async def test_two_replicas_one_killed_mid_stream(redis_server, key_prefix) -> None:
    gw = Gateway(redis_server.url, key_prefix).start()
    replicas = [Presence(redis_server.url, key_prefix, presence_claim_idle=1,
                         presence_leave_grace=0, presence_batch=20).start() for _ in range(2)]
    try:
        rooms = [room() for _ in range(3)]
        clients = []
        for i in range(30):
            c = await Client.open(gw.url, token(f"user{i % 12}"),
                                  rooms=[{"room": rooms[i % 3]}])
            clients.append(c)
            if i == 10:
                replicas[0].kill()  # with whatever it had read but not acknowledged
        for i, c in enumerate(clients):
            if i % 4 == 0:
                await c.close()
            elif i % 4 == 1:
                await c.ok("status", status="busy")
        # user k owns connections k, k+12, k+24: all with the same i % 4, so a user is
        # wholly gone (0), wholly busy (1) or wholly online.
        expected: dict[str, dict[str, tuple[int, str]]] = {r: {} for r in rooms}
        for i in range(len(clients)):
            if i % 4 == 0:
                continue
            user = f"user{i % 12}"
            count, status = expected[rooms[i % 3]].get(user, (0, "online"))
            expected[rooms[i % 3]][user] = (count + 1, status)
        busy_users = {f"user{i % 12}" for i in range(30) if i % 4 == 1}
        for members in expected.values():
            for user, (count, _) in members.items():
                members[user] = (count, "busy" if user in busy_users else "online")

        async def state() -> dict[str, dict[str, tuple[int, str]]]:
            async with replicas[1].api() as http:
                got = (await http.get("/v1/presence/rooms",
                                      params={"rooms": ",".join(rooms)})).json()["rooms"]
            return {r: {m["user"]["id"]: (m["connections"], m["status"])
                        for m in v["members"]} for r, v in got.items()}

        async def converged() -> bool:
            return await state() == expected

        await until(converged, timeout=20, interval=0.2)
        for c in clients:
            await c.close()
    finally:
        gw.terminate()
        for p in replicas:
            p.terminate()


@pytest.mark.parametrize("data_redis", ["plain"], indirect=True)  # it kills that Redis
async def test_presence_is_rebuilt_after_redis_loses_everything(stack, redis_server) -> None:
    """Redis restarts without persistence: the gateways announce their connections
    again and presence comes back without anyone reconnecting."""
    gw1, gw2, presence = stack
    r = room()
    a = await Client.open(gw1.url, token("amy"), rooms=[{"room": r}])
    b = await Client.open(gw2.url, token("ben"), rooms=[{"room": r}])
    assert {m["user"]["id"] for m in (await next_presence(b))["members"]} == {"amy", "ben"}
    redis_server.kill()
    redis_server.restart()

    async def members() -> list[str]:
        async with presence.api() as http:
            resp = await http.get(f"/v1/presence/rooms/{r}")
            return [m["user"]["id"] for m in resp.json()["members"]] if resp.is_success else []

    async def both_back() -> bool:
        return await members() == ["amy", "ben"]

    await until(both_back, timeout=30, interval=0.2)
    # b is sent the rebuilt state (a new one: b's first was read above), then diffs:
    # together they show both again.
    view: set[str] | None = None
    while view != {"amy", "ben"}:
        data = await next_presence(b, timeout=10)
        if data["kind"] == "state":
            view = {m["user"]["id"] for m in data["members"]}
        elif view is not None:
            view |= {m["user"]["id"] for m in data["joins"]}
            view -= {m["user"]["id"] for m in data["leaves"]}
    # The sweep survived the outage too: a gateway killed now still leaves no ghost.
    gw1.kill()
    async def only_ben() -> bool:
        return await members() == ["ben"]

    await until(only_ben, timeout=15, interval=0.2)
    del a
    await b.close()


async def test_a_gateway_presumed_dead_sends_its_clients_back(redis_server, key_prefix) -> None:
    """A gateway paused past its liveness TTL is swept; when it wakes, its clients are
    told to reconnect (4012) rather than being left invisible."""
    import signal

    gw1 = Gateway(redis_server.url, key_prefix, node_ttl=2).start()
    gw2 = Gateway(redis_server.url, key_prefix).start()
    presence = Presence(redis_server.url, key_prefix, presence_sweep_interval=1).start()
    try:
        r = room()
        observer = await Client.open(gw2.url, token("eye"), rooms=[{"room": r}])
        await next_presence(observer)
        sleeper = await Client.open(gw1.url, token("rip"), rooms=[{"room": r}])
        assert (await next_presence(observer))["joins"][0]["user"]["id"] == "rip"
        gw1.proc.send_signal(signal.SIGSTOP)
        try:
            diff = await next_presence(observer, timeout=15)  # swept as dead
            assert [m["user"]["id"] for m in diff["leaves"]] == ["rip"]
        finally:
            gw1.proc.send_signal(signal.SIGCONT)
        assert await sleeper.closed_with(timeout=10) == 4012
        back = await Client.open(gw1.url, token("rip"), rooms=[{"room": r}])
        assert (await next_presence(observer))["joins"][0]["user"]["id"] == "rip"
        await back.close()
        await observer.close()
    finally:
        for proc in (gw1, gw2, presence):
            proc.terminate()


ODD_USERS = ["ops/alice", "o'brien \"the\" lawyer", "名前", "a b", "x" * 200]


async def test_odd_user_ids_and_a_bad_entry_never_stop_the_sweep(stack, redis_server) -> None:
    """User ids with slashes, quotes, spaces and non-ASCII are users like any other; a tab
    is refused at the edge (it separates presence's bookkeeping fields); and an entry that
    is malformed anyway (written before ids were checked) is skipped, not fatal."""
    gw1, gw2, _ = stack
    refused = await Client.open(gw1.url)
    await refused.ws.send(json.dumps({"op": "connect", "token": token("tab\there")}))
    assert await refused.closed_with() == 4001
    r = room()
    observer = await Client.open(gw2.url, token("watcher"), rooms=[{"room": r}])
    await next_presence(observer)
    doomed = [await Client.open(gw1.url, token(u), rooms=[{"room": r}]) for u in ODD_USERS]
    joined: set[str] = set()
    while len(joined) < len(ODD_USERS):
        joined |= {m["user"]["id"] for m in (await next_presence(observer))["joins"]}
    assert joined == set(ODD_USERS)
    node = doomed[0].connected["data"]["node"]
    with redis.Redis.from_url(redis_server.url) as raw:
        raw.sadd(Keys(gw1.prefix).presence_node_conns(node), "garbage-without-tabs")
    gw1.kill()
    left: set[str] = set()
    while len(left) < len(ODD_USERS):
        left |= {m["user"]["id"] for m in (await next_presence(observer, timeout=15))["leaves"]}
    assert left == set(ODD_USERS)
    await observer.close()
