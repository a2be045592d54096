"""The chaos soak: steady traffic through two gateways while a random process — a
gateway, a service, Redis itself — is killed with -9 and started again.

Real everything: a private Redis with the append-only file (`appendfsync always`,
as a production Redis that promises not to lose acknowledged writes), two gateways,
presence, sessions and activity as processes. Publishers post over HTTP to either
gateway, retrying with the same idempotency key until acknowledged; recovering
clients (`GoldwireClient`) reconnect to whichever gateway is up and rejoin every
room from their last offset. At the end, with the chaos stopped and every process
back, the invariants:

- every acknowledged message reached every client in offset order, once (the client
  drops duplicates by offset; `duplicates_dropped` is reported), or the client was
  told `recovered: false` (or `resync`) for that room at that point — never a silent gap;
- activity recorded no publish twice;
- presence equals the connections that remain (no ghost of a killed gateway);
- no process is crash-looping: every one is alive and ready.

About two minutes in CI: CHAOS_SECONDS (default 75) of chaos plus set-up and checks;
longer with `CHAOS_SECONDS=600`. CHAOS_SEED picks the victims (printed on failure).
The figures are printed (`pytest -s`) for the notes.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from goldwire.cli.redis_server import RedisServer
from goldwire.client import Disconnected, GoldwireClient, HttpPublisher
from goldwire.client.errors import ClientError, PublishError
from goldwire.protocol.offsets import parse_offset
from tests.support import API_KEY, Activity, Gateway, Presence, Service, Sessions, token

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(900)]

SECONDS = float(os.environ.get("CHAOS_SECONDS") or 75)
SEED = int(os.environ.get("CHAOS_SEED") or random.randrange(1 << 30))
ROOMS = [f"doc:chaos{i}" for i in range(3)]
CLIENTS = 6
PUBLISH_EVERY = 0.15  # per room: about 20 messages/s in all
GRACE = 1.0  # PRESENCE_LEAVE_GRACE


@dataclass
class RoomLog:
    """What one client saw in one room: offsets in arrival order, and the gaps it was told of."""

    items: list[tuple[str, Any]] = field(default_factory=list)  # ("msg", offset) | ("gap", why)

    def offsets(self) -> list[str]:
        return [v for k, v in self.items if k == "msg"]


@dataclass
class Watcher:
    """A recovering client: reads, reconnects to any live gateway, rejoins from its offsets."""

    user: str
    client: GoldwireClient
    rooms: dict[str, RoomLog] = field(default_factory=lambda: {r: RoomLog() for r in ROOMS})
    reconnects: int = 0
    reconnect_seconds: list[float] = field(default_factory=list)

    def note_rejoin(self, reply: dict[str, Any]) -> None:
        for result in reply.get("rooms", ()):
            if result.get("room") in self.rooms and result.get("recovered") is False:
                self.rooms[result["room"]].items.append(("gap", "recovered: false"))


class Soak:
    def __init__(self, redis: RedisServer, prefix: str) -> None:
        self.redis = redis
        self.presence = Presence(redis.url, prefix, presence_leave_grace=GRACE,
                                 presence_sweep_interval=1)
        self.sessions = Sessions(redis.url, prefix)
        self.activity = Activity(redis.url, prefix)
        urls = {"presence_url": self.presence.http, "sessions_url": self.sessions.http,
                "activity_url": self.activity.http}
        self.gateways = [Gateway(redis.url, prefix, node_ttl=3, drain_timeout=1, **urls)
                         for _ in range(2)]
        self.processes: list[Service] = [*self.gateways, self.presence, self.sessions,
                                         self.activity]
        self.acked: dict[str, dict[str, int]] = {r: {} for r in ROOMS}  # offset -> seq
        self.attempted: dict[str, int] = dict.fromkeys(ROOMS, 0)
        self.publish_retries = 0
        self.kills: Counter[str] = Counter()
        self.stop = asyncio.Event()  # the chaos is over: publishers finish their message
        self.published = asyncio.Event()  # every publisher has finished: acked is final

    def start(self) -> None:
        for proc in (self.presence, self.sessions, self.activity, *self.gateways):
            proc.start()

    def live_gateway(self, hint: int) -> Gateway:
        alive = [g for g in self.gateways if g.proc and g.proc.poll() is None]
        return alive[hint % len(alive)] if alive else self.gateways[hint % 2]

    # --- traffic ------------------------------------------------------------------------
    async def publisher(self, room: str) -> None:
        pubs = [HttpPublisher(g.http, API_KEY, retries=0, timeout=3) for g in self.gateways]
        try:
            seq = 0
            while not self.stop.is_set():
                seq += 1
                self.attempted[room] = seq
                key = f"{room}-{seq}"
                for attempt in range(200):  # the same key until acknowledged (or the end)
                    pub = pubs[(seq + attempt) % 2]
                    try:
                        offset = await pub.publish_room(room, "document_update", {"seq": seq},
                                                        idempotency_key=key)
                    except PublishError:
                        self.publish_retries += 1
                        await asyncio.sleep(0.2)
                        continue
                    self.acked[room][offset] = seq
                    break
                await asyncio.sleep(PUBLISH_EVERY)
        finally:
            for pub in pubs:
                await pub.aclose()

    async def watch(self, w: Watcher, index: int) -> None:
        while True:
            try:
                msg = await w.client.next_message(timeout=1)
            except TimeoutError:
                if self.published.is_set() and self.caught_up(w):
                    return
                continue
            except Disconnected:
                await self.reconnect(w, index)
                continue
            log = w.rooms.get(msg.room or "")
            if log is None:
                continue
            if msg.type == "room_update" and msg.data.get("kind") == "resync":
                log.items.append(("gap", "resync"))
            elif msg.offset is not None:
                log.items.append(("msg", msg.offset))

    async def reconnect(self, w: Watcher, index: int) -> None:
        lost = time.monotonic()
        for attempt in range(400):
            w.client.url = self.live_gateway(index + attempt).url
            try:
                w.note_rejoin(await w.client.reconnect())
            except (ClientError, OSError, TimeoutError):
                await asyncio.sleep(0.1 + random.random() * 0.2)
                continue
            w.reconnects += 1
            w.reconnect_seconds.append(time.monotonic() - lost)
            return
        raise AssertionError(f"{w.user} could not reconnect for 80 s")

    def caught_up(self, w: Watcher) -> bool:
        return not any(self.silent_gaps(log, room) for room, log in w.rooms.items())

    def silent_gaps(self, log: RoomLog, room: str) -> list[str]:
        """Acknowledged offsets the client never got, with no gap announced where they fit:
        after the last offset below the missing one and before the first above it."""
        got = set(log.offsets())
        missing = []
        for offset in self.acked[room]:
            if offset in got:
                continue
            key, told = parse_offset(offset), False
            for kind, value in log.items:
                if kind == "gap":
                    told = True
                elif parse_offset(value) < key:
                    told = False  # a gap announced before this message does not cover the hole
                else:
                    break
            if not told:
                missing.append(offset)
        return missing

    # --- chaos --------------------------------------------------------------------------
    async def chaos(self, rng: random.Random) -> None:
        victims: list[Any] = [*self.processes, self.redis]
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            await asyncio.sleep(rng.uniform(3, 6))
            victim = rng.choice(victims)
            name = "redis" if victim is self.redis else f"{victim.kind}:{victim.port}"
            self.kills[name.split(":")[0]] += 1
            victim.kill()
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            if victim is self.redis:
                victim.restart()
            else:
                await asyncio.to_thread(victim.start)
        self.stop.set()


async def presence_users(soak: Soak, room: str) -> set[str]:
    async with soak.presence.api() as http:
        res = await http.get(f"/v1/presence/rooms/{room}")
        res.raise_for_status()
        return {m["user"]["id"] for m in res.json()["members"]}


async def activity_publishes(soak: Soak, room: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    async with soak.activity.api() as http:
        while True:
            params: dict[str, Any] = {"limit": 200, "type": "document_update"}
            if cursor:
                params["cursor"] = cursor
            page = (await http.get(f"/v1/activity/rooms/{room}", params=params)).json()
            items += [e for e in page["items"] if e.get("kind") == "publish"]
            cursor = page.get("next")
            if not cursor:
                return items


async def eventually(check: Any, within: float) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.5)


async def test_chaos_soak() -> None:
    rng = random.Random(SEED)
    redis = RedisServer(durable=True, die_with_parent=True).start()
    soak = Soak(redis, "gwchaos:" + uuid.uuid4().hex[:6])
    watchers: list[Watcher] = []
    started = time.monotonic()
    try:
        soak.start()
        for i in range(CLIENTS):
            user = f"watcher{i}"
            client = await GoldwireClient.connect(soak.gateways[i % 2].url, token(user),
                                                  rooms=ROOMS, reply_timeout=3, open_timeout=3)
            watchers.append(Watcher(user, client))
        watching = [asyncio.create_task(soak.watch(w, i)) for i, w in enumerate(watchers)]
        publishing = [asyncio.create_task(soak.publisher(r)) for r in ROOMS]
        await soak.chaos(rng)
        await asyncio.gather(*publishing)
        soak.published.set()
        async with asyncio.timeout(60):  # every client catches up once nothing is killed
            await asyncio.gather(*watching)

        figures = {
            "seed": SEED, "chaos_seconds": SECONDS, "kills": dict(soak.kills),
            "acked": sum(len(a) for a in soak.acked.values()),
            "publish_retries": soak.publish_retries,
            "deliveries": sum(len(log.offsets()) for w in watchers for log in w.rooms.values()),
            "reconnects": sum(w.reconnects for w in watchers),
            "reconnect_max_s": round(max((s for w in watchers for s in w.reconnect_seconds),
                                         default=0), 2),
            "told_gap": sum(k == "gap" for w in watchers for log in w.rooms.values()
                            for k, _ in log.items),
            "duplicates_dropped": sum(w.client.duplicates_dropped for w in watchers),
        }
        print("chaos soak:", json.dumps(figures))

        # 1. Nothing acknowledged is lost silently, nothing duplicated or out of order.
        for w in watchers:
            for room, log in w.rooms.items():
                offsets = log.offsets()
                keys = [parse_offset(o) for o in offsets]
                assert keys == sorted(set(keys)), f"{w.user} {room}: duplicated or reordered"
                assert not soak.silent_gaps(log, room), (w.user, room, figures)

        # 2. No process is left crash-looping: all alive and ready.
        async with httpx.AsyncClient(timeout=3) as http:
            for proc in soak.processes:
                assert proc.proc is not None and proc.proc.poll() is None, proc.kind
                assert (await http.get(proc.http + "/readyz")).status_code == 200, proc.kind

        # 3. Presence equals the connections that remain (ghosts of killed gateways swept).
        expected = {w.user for w in watchers}

        async def presence_settled() -> bool:
            return all([await presence_users(soak, r) == expected for r in ROOMS])

        assert await eventually(presence_settled, 30), {
            r: await presence_users(soak, r) for r in ROOMS}
        async with soak.presence.api() as http:  # one connection each: no ghost connection
            for w in watchers:
                status = (await http.get(f"/v1/presence/users/{w.user}")).json()
                assert status["connections"] == 1, status

        # 4. Activity counted no publish twice (the events stream is at-least-once).
        for room in ROOMS:
            entries = await activity_publishes(soak, room)
            ids = [e.get("id") or json.dumps(e, sort_keys=True) for e in entries]
            assert len(ids) == len(set(ids)), f"{room}: an event recorded twice"
            offsets = [e["offset"] for e in entries if e.get("offset")]
            assert len(offsets) == len(set(offsets)), f"{room}: a publish counted twice"
            assert len(entries) <= soak.attempted[room]
        print(f"chaos soak took {time.monotonic() - started:.0f}s")
    finally:
        for w in watchers:
            await w.client.close()
        for proc in soak.processes:
            proc.terminate(timeout=5)
        redis.stop()
