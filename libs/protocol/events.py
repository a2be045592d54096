"""The event stream between the gateway and the services, as one type.

Gateways (outbox.py) and `RedisPublisher` write entries with `event_fields`;
the presence and sessions services read them with `parse_event`. Activity reads
the same fields straight from the stream's bytes on its hot path
(activity/events.py `pack_fields`) and its tests hold it to this parser.

An entry is a flat Redis Stream field map. Every entry has `id` (unique across
nodes), `kind`, `node` and `ts` (ms); connection events add `conn`, `seq` (per
connection, so consumers order and de-duplicate them), `user`, `tenant` and,
once a session is open, `session`. The rest depends on the kind (KINDS below).
Objects and lists travel as JSON text; a field that is empty is left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from goldwire.protocol.names import DEFAULT_TENANT

# kind -> what it says. `replay` joins are the rooms a reconnecting gateway restates.
KINDS: dict[str, str] = {
    "connect": "a connection was admitted (name, status, meta)",
    "disconnect": "a connection ended (rooms it was in; offsets it read, when it closed cleanly)",
    "join": "a connection joined a room (room, name, offset; replay on a gateway's restart)",
    "leave": "a connection left a room (room)",
    "publish": "a message was published to a room or user (room or to, type, offset, source)",
    "send": "a direct message between users (to)",
    "status": "a connection's status changed (status, meta)",
    "session_state": "a session's UI state was written",
    "api": "an HTTP call to the gateway (method, route, code)",
}


class MalformedEvent(ValueError):
    """A stream entry that is not an event: consumers skip it (never retry a poison entry)."""


@dataclass(frozen=True, slots=True)
class StreamEvent:
    id: str
    kind: str
    node: str
    ts: int
    conn: str = ""
    seq: int = 0
    user: str = ""
    tenant: str = DEFAULT_TENANT
    session: str = ""
    name: str = ""
    room: str = ""
    status: str = ""
    meta: dict[str, Any] | None = None
    type: str = ""
    offset: str = ""
    to: str = ""
    source: str = ""
    replay: bool = False
    rooms: tuple[str, ...] = field(default_factory=tuple)
    offsets: dict[str, str] | None = None
    method: str = ""
    route: str = ""
    code: str = ""

    def fields(self) -> dict[str, Any]:
        """The entry `event_fields` writes for this event (tests, tools)."""
        extra = {k: getattr(self, k) for k in _OPTIONAL}
        extra["rooms"] = list(self.rooms) or None
        extra["replay"] = 1 if self.replay else None
        return event_fields(self.kind, self.id, self.node, self.ts, **extra)


_OPTIONAL = ("conn", "seq", "user", "tenant", "session", "name", "room", "status", "meta",
             "type", "offset", "to", "source", "offsets", "method", "route", "code")


def event_fields(kind: str, event_id: str, node: str, ts: int, **fields: Any) -> dict[str, Any]:
    """The one way an event is written: fields in a flat map, JSON for objects and lists,
    empty values (None, "", 0 for seq) left out."""
    entry: dict[str, Any] = {"id": event_id, "kind": kind, "node": node, "ts": ts}
    for key, value in fields.items():
        if value is None or value == "" or (key == "seq" and value == 0):
            continue
        entry[key] = json.dumps(value) if isinstance(value, (dict, list)) else value
    return entry


def parse_event(raw: dict[bytes, bytes]) -> StreamEvent:
    """A stream entry as a StreamEvent, or MalformedEvent (the consumer skips it).

    Bytes that are not UTF-8 raise UnicodeDecodeError instead: no gateway writes
    them, so the consumer's failure path keeps the entry as a dead letter to look at.
    """
    f = {k.decode(): v.decode() for k, v in raw.items()}
    kind = f.get("kind", "")
    if kind not in KINDS:
        raise MalformedEvent(f"unknown kind {kind!r}")
    try:
        meta = json.loads(f["meta"]) if f.get("meta") else None
        rooms = json.loads(f["rooms"]) if f.get("rooms") else []
        offsets = json.loads(f["offsets"]) if f.get("offsets") else None
        event = StreamEvent(
            id=f.get("id", ""), kind=kind, node=f.get("node", ""), ts=int(f.get("ts", 0)),
            conn=f.get("conn", ""), seq=int(f.get("seq", 0)), user=f.get("user", ""),
            tenant=f.get("tenant") or DEFAULT_TENANT, session=f.get("session", ""),
            name=f.get("name", ""), room=f.get("room", ""), status=f.get("status", ""),
            meta=meta if isinstance(meta, dict) else None, type=f.get("type", ""),
            offset=f.get("offset", ""), to=f.get("to", ""), source=f.get("source", ""),
            replay=f.get("replay", "") in ("1", "true"),
            rooms=tuple(str(r) for r in rooms) if isinstance(rooms, list) else (),
            offsets=({str(k): str(v) for k, v in offsets.items()}
                     if isinstance(offsets, dict) else None),
            method=f.get("method", ""), route=f.get("route", ""), code=f.get("code", ""))
    except (ValueError, TypeError) as exc:
        raise MalformedEvent(str(exc)) from None
    if kind in _NEEDS_CONNECTION and not (event.conn and event.user):
        raise MalformedEvent(f"{kind} without conn or user")
    return event


_NEEDS_CONNECTION = frozenset({"connect", "disconnect", "join", "leave", "status",
                               "session_state"})
