"""The presence engine: gateway events in, presence state and frames out.

A batch is applied in two pipelined phases (see scripts.py): the user side
of every event, then the room side using what the first phase returned (the
user's aggregate status, meta and version, the rooms a connection was in).
The batch's last room script on each room also flushes it: the room
publishes one diff for the whole batch (and the states of its joiners), from
pending data the room's scripts keep in Redis, so a crash between a change
and the flush loses no frame (scripts.py says why). Both phases are
idempotent and order-independent, so a redelivered or reordered batch ends
in the same state and publishes no duplicate diff.

It returns `PresenceChange`s for backends (users going online or offline,
members joining or leaving rooms), which `notify.py` forwards. These are per
event, as each room script saw it, not coalesced like the diffs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from goldwire.presence import scripts
from goldwire.presence.events import GatewayEvent
from goldwire.presence.pacing import DiffPacer, RoomId
from goldwire.protocol.keys import Keys
from goldwire.service import run_loading_scripts
from goldwire.store.lua import BoundScript

log = logging.getLogger("goldwire.presence.engine")


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """One change a backend may care about."""

    kind: str  # user_online | user_offline | room_join | room_leave
    tenant: str
    user: str
    ts: int
    room: str = ""
    status: str = ""


@dataclass(frozen=True, slots=True)
class UserResult:
    gone: bool
    before: str
    after: str
    meta: str
    version: int
    conn_rooms: tuple[str, ...]
    user_rooms: tuple[str, ...]

    @classmethod
    def parse(cls, raw: list[Any]) -> UserResult:
        first = _s(raw[0])
        if first == "gone":
            return cls(True, _s(raw[1]), _s(raw[1]), _s(raw[2]), int(raw[3]), (), ())
        return cls(False, first, _s(raw[1]), _s(raw[2]), int(raw[3]),
                   tuple(_s(r) for r in raw[4]), tuple(_s(r) for r in raw[5]))


@dataclass(frozen=True, slots=True)
class RoomKeys:
    """A room's presence keys (all on the room's slot) and its channel."""

    conns: str
    members: str
    counts: str
    user_versions: str
    pending_leaves: str
    version: str
    pending_diff: str
    pending_states: str
    channel: str


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class PresenceEngine:
    def __init__(self, redis: Redis, keys: Keys, grace_ms: int, tombstone_ttl: int,
                 pacer: DiffPacer | None = None,
                 observe_diff_age: Callable[[float], None] | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.grace_ms = grace_ms
        self.tombstone_ttl = tombstone_ttl
        self.pacer = pacer or DiffPacer(budget=0, max_interval_ms=0)  # default: no pacing
        self.flush_deferred = asyncio.Event()  # set when the pacer holds a room back
        # Seconds from a room's oldest event in a batch to the flush that published its
        # diff, once per flushed room per batch (goldwire_presence_join_to_diff_seconds).
        self.observe_diff_age = observe_diff_age or (lambda seconds: None)
        self._user = BoundScript(scripts.USER_APPLY, redis)
        self._room = BoundScript(scripts.ROOM_APPLY, redis)
        self._status = BoundScript(scripts.ROOM_STATUS, redis)
        self._expire = BoundScript(scripts.ROOM_EXPIRE, redis)

    async def apply(self, events: list[GatewayEvent],
                    grace_ms: int | None = None) -> list[PresenceChange]:
        """Apply a batch in order; returns the changes for backends."""
        if not events:
            return []
        return await run_loading_scripts(self.redis, (self._user, self._room, self._status),
                                         lambda: self._apply(events, grace_ms))

    async def _apply(self, events: list[GatewayEvent],
                     grace_ms: int | None) -> list[PresenceChange]:
        grace = self.grace_ms if grace_ms is None else grace_ms
        now = int(time.time() * 1000)
        keys = self.keys
        pipe = self.redis.pipeline(transaction=False)
        for ev in events:
            self._user.queue(
                pipe, conns=keys.user_presence(ev.tenant, ev.user),
                version=keys.user_presence_version(ev.tenant, ev.user),
                conn_rooms=keys.user_conn_rooms(ev.tenant, ev.user, ev.conn),
                gone=keys.user_conn_gone(ev.tenant, ev.user, ev.conn),
                last_seen=keys.user_last_seen(ev.tenant, ev.user),
                user_rooms=keys.user_rooms(ev.tenant, ev.user),
                kind=ev.kind, conn=ev.conn, seq=ev.seq, status=ev.status, meta=ev.meta,
                room=ev.room, ts=ev.ts or now, tomb_ttl=self.tombstone_ttl)
        users = [UserResult.parse(raw) for raw in await pipe.execute()]

        changes: list[PresenceChange] = []
        # The room side, (event, its user result, room, present): True/False for a join or
        # leave, None for a status change shown in the room. Queued once the last call on
        # each room is known.
        room_ops: list[tuple[GatewayEvent, UserResult, str, bool | None]] = []
        pipe = self.redis.pipeline(transaction=False)
        for ev, res in zip(events, users, strict=True):
            member = f"{ev.tenant}\t{ev.user}\t{ev.conn}"
            if res.before == "offline" and res.after != "offline":
                changes.append(PresenceChange("user_online", ev.tenant, ev.user, ev.ts,
                                              status=res.after))
            elif res.before != "offline" and res.after == "offline":
                changes.append(PresenceChange("user_offline", ev.tenant, ev.user, ev.ts))
            if ev.kind in ("connect", "join") and not res.gone:
                pipe.sadd(keys.presence_nodes(), ev.node)
                pipe.sadd(keys.presence_node_conns(ev.node), member)
            if ev.kind == "join" and not res.gone:
                room_ops.append((ev, res, ev.room, True))
            elif ev.kind == "leave" and not res.gone:
                room_ops.append((ev, res, ev.room, False))
            elif ev.kind == "disconnect":
                pipe.srem(keys.presence_node_conns(ev.node), member)
                room_ops += [(ev, res, room, False)
                             for room in sorted(set(ev.rooms) | set(res.conn_rooms))]
            room_ops += [(ev, res, room, None) for room in res.user_rooms  # status or meta
                         if not (ev.kind == "join" and room == ev.room)]
        # The batch's last call on each room flushes it: one diff per room per batch. It
        # flushes even when its own event turns out a no-op, so a redelivered batch
        # publishes what a run that died before its flush left pending. A room the pacer
        # holds back is indexed in the due set first, so its flush is never orphaned.
        last = {(ev.tenant, room): i for i, (ev, _, room, _) in enumerate(room_ops)}
        oldest: dict[RoomId, int] = {}  # room -> ts (ms) of its oldest event in the batch
        for ev, _, room, _ in room_ops:
            ts = ev.ts or now
            if ts < oldest.get((ev.tenant, room), ts + 1):
                oldest[(ev.tenant, room)] = ts
        room_keys = {where: self._room_keys(*where) for where in last}
        plans = {where: self.pacer.plan(where, now) for where in last}
        deferred: list[RoomId] = []
        for (tenant, room), plan in plans.items():
            if plan.index_due is not None:
                deferred.append((tenant, room))
                pipe.zadd(keys.presence_due(), {f"{tenant}\t{room}\t{plan.index_due}":
                                                plan.index_due})
        joins_leaves: list[tuple[GatewayEvent, str, int]] = []  # (event, room, result index)
        flushes: dict[RoomId, int] = {}  # room -> result index of its flushing call
        for i, (ev, res, room, present) in enumerate(room_ops):
            where = (ev.tenant, room)
            rk = room_keys[where]
            flush = "1" if last[where] == i and plans[where].flush_now else "0"
            if present is None:
                self._status.queue(
                    pipe, members=rk.members, counts=rk.counts,
                    user_versions=rk.user_versions, pending_diff=rk.pending_diff,
                    version=rk.version, pending_states=rk.pending_states, conns=rk.conns,
                    user=ev.user, status=res.after, meta=res.meta, user_version=res.version,
                    flush=flush, channel=rk.channel, room=room)
            else:
                if not present and grace > 0:  # indexed first: a pending leave is never orphaned
                    due = now + grace
                    pipe.zadd(keys.presence_due(), {f"{ev.tenant}\t{room}\t{due}": due})
                self._room.queue(
                    pipe, conns=rk.conns, members=rk.members, counts=rk.counts,
                    user_versions=rk.user_versions, pending_leaves=rk.pending_leaves,
                    version=rk.version,
                    tombstone=keys.presence_tombstone(ev.tenant, room, ev.conn),
                    pending_diff=rk.pending_diff, pending_states=rk.pending_states,
                    conn=ev.conn, seq=ev.seq, present="1" if present else "0", user=ev.user,
                    name=ev.name, status=res.after, meta=res.meta, user_version=res.version,
                    now_ms=now, grace_ms=grace,
                    node_channel=keys.node_channel(ev.node) if present else "",
                    tomb_ttl=self.tombstone_ttl, flush=flush, channel=rk.channel, room=room)
                joins_leaves.append((ev, room, len(pipe) - 1))  # the script is queued last
            if flush == "1":
                flushes[where] = len(pipe) - 1
        try:
            results = await pipe.execute()
        except BaseException:
            self.pacer.not_indexed(deferred)
            raise
        self.pacer.indexed(deferred)
        if deferred:
            self.flush_deferred.set()
        done_ms = time.time() * 1000
        for where, at in flushes.items():
            self.pacer.flushed(where, now, int(results[at][-1]))
            self.observe_diff_age(max(0.0, done_ms - oldest[where]) / 1000)
        for ev, room, at in joins_leaves:
            raw = results[at]
            if int(raw[0]) == 0:
                continue
            kind = _s(raw[1])
            if kind == "joins":
                changes.append(PresenceChange("room_join", ev.tenant, ev.user, ev.ts, room=room))
            elif kind == "leaves":
                changes.append(PresenceChange("room_leave", ev.tenant, ev.user, ev.ts, room=room))
        return changes

    def _room_keys(self, tenant: str, room: str) -> RoomKeys:
        keys = self.keys
        return RoomKeys(
            conns=keys.presence_conns(tenant, room), members=keys.presence_members(tenant, room),
            counts=keys.presence_counts(tenant, room),
            user_versions=keys.presence_user_versions(tenant, room),
            pending_leaves=keys.presence_pending(tenant, room),
            version=keys.presence_version(tenant, room),
            pending_diff=keys.presence_pending_diff(tenant, room),
            pending_states=keys.presence_pending_states(tenant, room),
            channel=keys.room_channel(tenant, room))

    async def expire_due(self, now_ms: int | None = None) -> list[PresenceChange]:
        """Flush every room with a due entry: pending leaves whose grace ran out become
        leave diffs, and paced flushes that are due go out (whichever process deferred
        them; the sweeper's job runs this every second).

        Each entry (`<tenant>\t<room>\t<due>`) is its own member of the due set, so
        removing the entries processed here can never drop one added meanwhile.
        """
        now = now_ms or int(time.time() * 1000)
        due, rooms_of, bad = [], set(), []
        for member in await self.redis.zrangebyscore(self.keys.presence_due(), "-inf", now):
            try:  # one malformed entry used to fail the job, every second, for every room
                text = _s(member)
                tenant, room, _ = text.split("\t")
            except ValueError:  # UnicodeDecodeError is one
                bad.append(member)
                continue
            due.append(text)
            rooms_of.add((tenant, room))
        if bad:  # never flushable: dropped, not retried every second
            log.warning("presence: dropped %d malformed due entries, e.g. %r", len(bad),
                        bad[0][:200])
            await self.redis.zrem(self.keys.presence_due(), *bad)
        return await self.flush_rooms(sorted(rooms_of), due, now)

    async def flush_paced(self, due: list[tuple[RoomId, int]], now: int) -> list[PresenceChange]:
        """Publish what the pacer held back in these rooms (their due entries are known:
        no scan of the due set before the diff goes out)."""
        entries = [f"{tenant}\t{room}\t{at}" for (tenant, room), at in due]
        return await self.flush_rooms([room for room, _ in due], entries, now)

    async def flush_rooms(self, rooms: list[RoomId], entries: list[str],
                          now: int) -> list[PresenceChange]:
        """ROOM_EXPIRE on each room in one pipeline (each ends with the room's flush), then
        the due entries go, only once the flushes are done."""
        keys = self.keys

        async def run() -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            for tenant, room in rooms:
                rk = self._room_keys(tenant, room)
                self._expire.queue(
                    pipe, members=rk.members, counts=rk.counts,
                    user_versions=rk.user_versions, pending_leaves=rk.pending_leaves,
                    version=rk.version, pending_diff=rk.pending_diff,
                    pending_states=rk.pending_states, conns=rk.conns, now_ms=now,
                    channel=rk.channel, room=room)
            return await pipe.execute() if rooms else []

        results = await run_loading_scripts(self.redis, (self._expire,), run)
        changes: list[PresenceChange] = []
        for (tenant, room), (leaves, _, size) in zip(rooms, results, strict=True):
            self.pacer.flushed((tenant, room), now, int(size))
            changes += [PresenceChange("room_leave", tenant, _user_of(item), now, room=room)
                        for item in leaves]
        if entries:
            await self.redis.zrem(keys.presence_due(), *entries)
        return changes

    # --- reads for the HTTP API ----------------------------------------------------------
    async def room_members(self, tenant: str, rooms: Iterable[str]) -> dict[str, dict[str, Any]]:
        """{room: {"members": [...], "version": n}} in one round trip."""
        rooms = list(rooms)
        pipe = self.redis.pipeline(transaction=False)
        for room in rooms:
            pipe.hvals(self.keys.presence_members(tenant, room))
            pipe.get(self.keys.presence_version(tenant, room))
        raw = await pipe.execute()
        out = {}
        for i, room in enumerate(rooms):
            members = sorted((json.loads(m) for m in raw[2 * i]), key=lambda m: m["user"]["id"])
            out[room] = {"members": members, "version": int(raw[2 * i + 1] or 0)}
        return out

    async def user_status(self, tenant: str, user: str) -> dict[str, Any]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hvals(self.keys.user_presence(tenant, user))
        pipe.get(self.keys.user_last_seen(tenant, user))
        conns, last_seen = await pipe.execute()
        rank = {"online": 3, "busy": 2, "away": 1}
        status = "offline"
        for raw in conns:
            st = _s(raw).split("|")[1]
            if rank.get(st, 0) > rank.get(status, 0):
                status = st
        return {"user": user, "status": status, "connections": len(conns),
                "last_seen": int(last_seen) if last_seen and status == "offline" else None}


def _user_of(member_json: Any) -> str:
    return str(json.loads(member_json)["user"]["id"])
