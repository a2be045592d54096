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
from dataclasses import dataclass, field, fields
from typing import Any

from goldwire.protocol.names import DEFAULT_TENANT

# kind -> what it says. `replay` joins are the rooms a reconnecting gateway restates.
KINDS: dict[str, str] = {
    "connect": "a connection was admitted (name, status, meta)",
    "disconnect": "a connection ended (rooms it was in; offsets it read, when it closed "
                  "cleanly; quiet_rooms: those of them without presence)",
    "join": "a connection joined a room (room, name, offset; replay on a gateway's restart; "
            "presence 'off' for a room whose options turn presence off)",
    "leave": "a connection left a room (room; presence 'off' as its join)",
    "publish": "a message was published to a room or user (room or to, type, offset, source)",
    "send": "a direct message between users (to)",
    "status": "a connection's status changed (status, meta)",
    "session_state": "a session's UI state was written",
    "api": "an HTTP call to the gateway (method, route, code)",
}


class MalformedEvent(ValueError):
    """A stream entry that is not an event: consumers skip it (never retry a poison entry)."""


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 2x, per entry
class StreamEvent:
    id: str = ""
    kind: str = ""
    node: str = ""
    ts: int = 0
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
    presence: str = ""  # "off": a join or leave in a room without presence (ROOM_OPTIONS)
    quiet_rooms: tuple[str, ...] = field(default_factory=tuple)  # a disconnect's, the same

    def entry(self) -> dict[str, Any]:
        """The entry `event_fields` writes for this event (tests, tools)."""
        extra = {k: getattr(self, k) for k in _OPTIONAL}
        extra["rooms"] = list(self.rooms) or None
        extra["quiet_rooms"] = list(self.quiet_rooms) or None
        extra["replay"] = 1 if self.replay else None
        return event_fields(self.kind, self.id, self.node, self.ts, **extra)


_OPTIONAL = tuple(f.name for f in fields(StreamEvent)
                  if f.name not in ("id", "kind", "node", "ts", "rooms", "replay",
                                    "quiet_rooms"))
# Fields taken from the entry as they are (`from __future__` makes annotations strings).
_TEXT_FIELDS = frozenset(f.name for f in fields(StreamEvent) if f.type == "str")


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
    # Only the fields present are passed: the defaults cover the rest (this runs for
    # every entry every service reads, so it stays a few microseconds).
    kw: dict[str, Any] = {k: v for k, v in f.items() if k in _TEXT_FIELDS}
    try:
        kw["ts"] = int(f.get("ts", 0))
        if "seq" in f:
            kw["seq"] = int(f["seq"])
        if not kw.get("tenant"):
            kw["tenant"] = DEFAULT_TENANT
        if f.get("meta"):
            meta = json.loads(f["meta"])
            kw["meta"] = meta if isinstance(meta, dict) else None
        if f.get("rooms"):
            rooms = json.loads(f["rooms"])
            kw["rooms"] = tuple(str(r) for r in rooms) if isinstance(rooms, list) else ()
        if f.get("quiet_rooms"):
            quiet = json.loads(f["quiet_rooms"])
            kw["quiet_rooms"] = tuple(str(r) for r in quiet) if isinstance(quiet, list) else ()
        if f.get("offsets"):
            offsets = json.loads(f["offsets"])
            kw["offsets"] = ({str(k): str(v) for k, v in offsets.items()}
                             if isinstance(offsets, dict) else None)
        if f.get("replay"):
            kw["replay"] = f["replay"] in ("1", "true")
    except (ValueError, TypeError) as exc:
        raise MalformedEvent(str(exc)) from None
    event = StreamEvent(**kw)
    if kind in _NEEDS_CONNECTION and not (event.conn and event.user):
        raise MalformedEvent(f"{kind} without conn or user")
    return event


_NEEDS_CONNECTION = frozenset({"connect", "disconnect", "join", "leave", "status",
                               "session_state"})
