"""Sessions and preferences in Redis: the one module that reads and writes them.

The gateway uses it at `connect` (open or resume a session, in one round
trip, so a connect never waits on another service) and for the `session` and
`prefs` ops; the sessions service uses it for its event consumer, its jobs and
its HTTP API. Either way the same scripts run (session_*.lua, prefs_write.lua).
All of a user's session keys share the hash tag `{u/<tenant>/<user>}`, so a
session id is only ever looked up under the user presenting it: another
user's id simply does not exist there, and a new session is made.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from goldwire.protocol.keys import Keys
from goldwire.store.lua import bind

MAX_STATE_BYTES = 16384
MAX_PREFS_BYTES = 65536
MAX_PREFS_DEPTH = 8
REVOKED_TOMBSTONE_SECONDS = 30 * 86400

log = logging.getLogger("goldwire.store.sessions")


class PreferencesConflict(Exception):
    """A write based on a stale version; carries the current values and version."""

    def __init__(self, values: dict[str, Any], version: int) -> None:
        super().__init__(f"preferences are at version {version}")
        self.values = values
        self.version = version


class InvalidValue(ValueError):
    """State or preferences over their size or depth limit."""


@dataclass
class SessionInfo:
    id: str
    resumed: bool
    rooms: dict[str, str] = field(default_factory=dict)  # room -> last known offset
    state: dict[str, Any] = field(default_factory=dict)

    def wire(self) -> dict[str, Any]:
        """The `session` object of the connect reply."""
        return {"id": self.id, "resumed": self.resumed,
                "rooms": [{"room": r, "offset": o} for r, o in sorted(self.rooms.items())],
                "state": self.state}


def new_session_id() -> str:
    return secrets.token_urlsafe(18)


def _expiry_member(raw: Any) -> tuple[str, str, str] | None:
    """`<tenant>\t<user>\t<sid>` → its parts, or None. Tenants and session ids hold no
    tab; a user id from before ids were checked at the edge might, so it takes the rest."""
    try:
        text = _s(raw)
    except UnicodeDecodeError:
        return None
    tenant, _, rest = text.partition("\t")
    user, _, sid = rest.rpartition("\t")
    return (tenant, user, sid) if tenant and user and sid else None


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def check_json(value: dict[str, Any], max_bytes: int, max_depth: int, what: str) -> str:
    """Encode `value`, refusing it over the size or nesting limit."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) > max_bytes:
        raise InvalidValue(f"{what} over {max_bytes} bytes")
    if _depth(value) > max_depth:
        raise InvalidValue(f"{what} nested deeper than {max_depth}")
    return text


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


class SessionStore:
    """A user's sessions (open, resume, slide, revoke, expire) and preferences."""

    def __init__(self, redis: Redis, keys: Keys, timeout_hours: float) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl_ms = max(1, int(timeout_hours * 3600 * 1000))
        self._open = bind(redis, __package__, "session_open.lua")
        self._event = bind(redis, __package__, "session_event.lua")
        self._set_state = bind(redis, __package__, "session_set_state.lua")
        self._revoke = bind(redis, __package__, "session_revoke.lua")
        self._expire = bind(redis, __package__, "session_expire.lua")
        self._write_prefs = bind(redis, __package__, "prefs_write.lua")

    def _session_keys(self, tenant: str, user: str, sid: str) -> dict[str, str]:
        k = self.keys
        return {"sessions": k.user_sessions(tenant, user), "session": k.session(tenant, user, sid),
                "rooms": k.session_rooms(tenant, user, sid),
                "conns": k.session_conns(tenant, user, sid)}

    # --- sessions ----------------------------------------------------------------------
    async def open(self, tenant: str, user: str, requested: str | None, conn: str, node: str,
                   device: str = "",
                   index: Callable[..., None] | None = None) -> SessionInfo:
        """Resume `requested` if it is this user's, live and not revoked; else a new one.

        The session's entry in the global expiry index only drives clean-up (its keys
        carry their own TTL), so a caller with a fire-and-forget writer passes it as
        `index` (called with the ZADD's arguments) and the connect does not wait on a
        second round trip; without one, it is written here.
        """
        k, now = self.keys, int(time.time() * 1000)
        new = new_session_id()
        asked = requested or ""
        sid, resumed, rooms, state = await self._open(
            **self._session_keys(tenant, user, asked or new),
            revoked=k.session_revoked(tenant, user, asked or new),
            new_session=k.session(tenant, user, new), new_conns=k.session_conns(tenant, user, new),
            requested=asked, new_id=new, conn=conn, node=node, now_ms=now, ttl_ms=self.ttl_ms,
            device=device[:200])
        sid = _s(sid)
        if index is not None:
            index("ZADD", k.session_expiry(), now + self.ttl_ms, f"{tenant}\t{user}\t{sid}")
        else:
            await self.redis.zadd(k.session_expiry(),
                                  {f"{tenant}\t{user}\t{sid}": now + self.ttl_ms})
        flat = [_s(x) for x in rooms]
        return SessionInfo(sid, bool(resumed), dict(zip(flat[::2], flat[1::2], strict=True)),
                           json.loads(_s(state)))

    def queue_event(self, pipe: Any, kind: str, tenant: str, user: str, sid: str,
                    conn: str, room: str = "", offset: str = "",
                    offsets: dict[str, str] | None = None, now: int | None = None) -> None:
        """Queue one gateway event's effect on a session in `pipe` (run the pipeline with
        `run_loading_scripts(store.redis, store.event_scripts, ...)`)."""
        now = now or int(time.time() * 1000)
        pipe.zadd(self.keys.session_expiry(), {f"{tenant}\t{user}\t{sid}": now + self.ttl_ms})
        self._event.queue(pipe, **self._session_keys(tenant, user, sid), kind=kind, sid=sid,
                          conn=conn, room=room, offset=offset,
                          offsets=json.dumps(offsets) if offsets else "", now_ms=now,
                          ttl_ms=self.ttl_ms)

    @property
    def event_scripts(self) -> tuple[Any, ...]:
        """The scripts `queue_event` queues."""
        return (self._event,)

    async def set_state(self, tenant: str, user: str, sid: str, state: dict[str, Any]) -> bool:
        text = check_json(state, MAX_STATE_BYTES, MAX_PREFS_DEPTH, "session state")
        done = await self._set_state(session=self.keys.session(tenant, user, sid), state=text,
                                     now_ms=int(time.time() * 1000))
        return bool(done)

    async def list_sessions(self, tenant: str, user: str) -> list[dict[str, Any]]:
        k, now = self.keys, int(time.time() * 1000)
        ids = [_s(s) for s in await self.redis.zrangebyscore(k.user_sessions(tenant, user),
                                                             now, "+inf")]
        pipe = self.redis.pipeline(transaction=False)
        for sid in ids:
            pipe.hgetall(k.session(tenant, user, sid))
            pipe.hlen(k.session_conns(tenant, user, sid))
        raw = await pipe.execute()
        out = []
        for i, sid in enumerate(ids):
            h = {_s(a): _s(b) for a, b in raw[2 * i].items()}
            if not h:
                continue
            out.append({"id": sid, "device": h.get("device", ""),
                        "created": int(h.get("created", 0)),
                        "last_seen": int(h.get("last_seen", 0)),
                        "connections": int(raw[2 * i + 1])})
        return sorted(out, key=lambda s: -s["last_seen"])

    async def session_info(self, tenant: str, user: str, sid: str) -> dict[str, Any] | None:
        """One live session with its rooms and state, or None."""
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(k.session(tenant, user, sid))
        pipe.hgetall(k.session_rooms(tenant, user, sid))
        h, rooms = await pipe.execute()
        if not h:
            return None
        f = {_s(a): _s(b) for a, b in h.items()}
        return {"id": sid, "device": f.get("device", ""), "created": int(f.get("created", 0)),
                "last_seen": int(f.get("last_seen", 0)),
                "rooms": [{"room": _s(r), "offset": _s(o)} for r, o in sorted(rooms.items())],
                "state": json.loads(f.get("state", "{}"))}

    async def revoke(self, tenant: str, user: str, sid: str) -> tuple[bool, dict[str, str]]:
        """Delete the session for good; returns (existed, {conn: node}) to close."""
        existed, conns = await self._revoke(
            **self._session_keys(tenant, user, sid),
            revoked=self.keys.session_revoked(tenant, user, sid), sid=sid,
            tombstone_seconds=REVOKED_TOMBSTONE_SECONDS)
        flat = [_s(x) for x in conns]
        return bool(existed), dict(zip(flat[::2], flat[1::2], strict=True))

    async def expire_due(self) -> int:
        """Remove sessions whose sliding expiry passed; returns how many."""
        k, now = self.keys, int(time.time() * 1000)
        removed = 0
        for raw in await self.redis.zrangebyscore(k.session_expiry(), "-inf", now):
            parsed = _expiry_member(raw)
            if parsed is None:  # one bad entry used to fail the job for all the rest
                log.warning("sessions: dropped a malformed expiry entry %r", raw[:200])
                await self.redis.zrem(k.session_expiry(), raw)
                continue
            tenant, user, sid = parsed
            member = _s(raw)
            try:
                removed += int(await self._expire(**self._session_keys(tenant, user, sid),
                                                  sid=sid, now_ms=now))
            except ResponseError:  # the script refuses it: skip, the others still expire
                log.exception("sessions: skipped expiring %r", member[:200])
                continue
            score = await self.redis.zscore(k.session_expiry(), member)
            if score is not None and score <= now:
                await self.redis.zrem(k.session_expiry(), member)
        return removed

    # --- preferences ----------------------------------------------------------------------
    async def read_prefs(self, tenant: str, user: str) -> tuple[dict[str, Any], int]:
        values, version = await self.redis.hmget(  # type: ignore[misc]
            self.keys.preferences(tenant, user), ["values", "version"])
        return json.loads(_s(values)) if values else {}, int(version or 0)

    async def write_prefs(self, tenant: str, user: str, values: dict[str, Any],
                          version: int) -> int:
        """Write `values` if `version` is current; push them to the user's connections.

        Raises PreferencesConflict (with the current values) for a stale version and
        InvalidValue over the limits.
        """
        text = check_json(values, MAX_PREFS_BYTES, MAX_PREFS_DEPTH, "preferences")
        ok, current, new_version = await self._write_prefs(
            preferences=self.keys.preferences(tenant, user), values=text, version=version,
            channel=self.keys.user_channel(tenant, user))
        if not ok:
            raise PreferencesConflict(json.loads(_s(current)), int(new_version))
        return int(new_version)
