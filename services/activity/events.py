"""Gateway events as the activity service records them (pure data, no I/O).

A stream entry becomes one packed byte string for RECORD (scripts.py):

    conn \\x1f seq \\x1f replay \\x1f node \\x1f <entry>

where the history entry is

    id \\x1f kind \\x1f ts \\x1f user \\x1f room \\x1f type \\x1f api \\x1f status \\x1f offset
       \\x1f to \\x1f source \\x1f flags

The entry is what the histories store, built the same way every time, so a
redelivered or re-sent event is the same member of the same sorted set (the
history itself is the duplicate check). It starts with the id, which breaks ties
between equal times in pagination. `decode_entry` turns it into the JSON object the
API returns. None of the fields may contain a control character or be other than
UTF-8 (checked here), so the separators are unambiguous and every entry decodes.
The consumer's hot path (`pack_fields`) works on the stream's bytes directly;
`ActivityEvent` (tests, the sweep's made-up disconnects) goes through the same code,
so both give the same bytes for the same event.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from goldwire.protocol.names import DEFAULT_TENANT, ROOM_RE, TENANT_RE

# What is recorded. `session_state` (UI state) is not activity; `api` is the gateway's
# record of an HTTP call (method, route, code), counted as API use.
KINDS = frozenset({"connect", "disconnect", "join", "leave", "publish", "status", "send", "api"})
MESSAGE_KINDS = frozenset({"publish", "send"})
ENTRY_FIELDS = ("id", "kind", "ts", "user", "room", "type", "api", "status", "offset", "to",
                "source", "flags")
_KINDS_B = frozenset(k.encode() for k in KINDS)
_NEEDS_CONN = frozenset({b"connect", b"disconnect", b"join", b"leave"})
_DEFAULT_TENANT_B = DEFAULT_TENANT.encode()
_room = re.compile(ROOM_RE.encode()).match
_tenant = re.compile(TENANT_RE.encode()).match
_digits = re.compile(rb"-?[0-9]{1,16}\Z").match
_control = re.compile(rb"[\x00-\x1f]").search


def _pack(kind: bytes, ts: bytes, event_id: bytes, user: bytes, room: bytes, conn: bytes,
          seq: bytes, node: bytes, type_: bytes, api: bytes, status: bytes, offset: bytes,
          to: bytes, source: bytes, replay: bool, flags: bytes) -> bytes | None:
    parts = (event_id, kind, ts, user, room, type_, api, status, offset, to, source, flags)
    joined = b"".join((*parts, conn, seq, node))
    if _control(joined):
        return None
    try:  # else one record would break every history page it lands on (decode_entry)
        joined.decode()
    except UnicodeDecodeError:
        return None
    return b"\x1f".join((conn, seq or b"0", b"r" if replay else b"", node, *parts))


def pack_fields(fields: dict[bytes, bytes]) -> tuple[str, bytes] | None:
    """(tenant, packed event) of a stream entry, or None: kinds not recorded, malformed.

    Malformed entries are skipped, never retried: a poison entry must not stall the stream.
    """
    get = fields.get
    kind = get(b"kind")
    if kind not in _KINDS_B:
        return None
    ts, event_id = get(b"ts", b""), get(b"id", b"")
    tenant = get(b"tenant") or _DEFAULT_TENANT_B
    if not (_digits(ts) and event_id and _tenant(tenant)):
        return None
    user, room, conn, seq = get(b"user", b""), get(b"room", b""), get(b"conn", b""), \
        get(b"seq", b"0")
    if (room and not _room(room)) or not _digits(seq):
        return None
    if kind in _NEEDS_CONN and not (conn and user and (room or kind in (b"connect",
                                                                      b"disconnect"))):
        return None
    type_ = get(b"type", b"")
    if kind == b"send" and not type_:
        type_ = b"user_message"
    source = get(b"source", b"")
    api = b""
    if kind == b"api":
        api = b" ".join(x for x in (get(b"method"), get(b"route"), get(b"code")) if x)
    elif source == b"api":
        api = kind
    # A disconnect's `rooms` are not needed: the connection's own record lists its rooms.
    packed = _pack(kind, ts, event_id, user, room, conn, seq, get(b"node", b""), type_, api,
                   get(b"status", b"") if kind == b"status" else b"", get(b"offset", b""),
                   get(b"to", b""), source, get(b"replay") in (b"1", b"true"), b"")
    return None if packed is None else (tenant.decode(), packed)


def decode_entry(member: bytes) -> dict[str, Any]:
    """A history entry as the API returns it: the fields that are set, `ts` a number."""
    values = member.decode().split("\x1f")
    doc: dict[str, Any] = {k: v for k, v in zip(ENTRY_FIELDS, values, strict=False) if v}
    doc["ts"] = int(doc["ts"])
    if doc.pop("flags", "") == "s":
        doc["swept"] = True
    if doc.get("kind") != "api":
        doc.pop("api", None)
    return doc


def tie_key(event_id: str) -> bytes:
    """What the entries of `event_id` start with: entries of one time order like these."""
    return event_id.encode() + b"\x1f"


@dataclass(frozen=True, slots=True)
class ActivityEvent:
    """One event as data (tests, the sweep); `packed()` is what the stream path makes."""

    id: str
    kind: str
    ts: int
    tenant: str = DEFAULT_TENANT
    user: str = ""
    room: str = ""
    conn: str = ""
    seq: int = 0
    node: str = ""
    type: str = ""
    status: str = ""
    offset: str = ""
    to: str = ""
    source: str = ""
    api: str = ""
    replay: bool = False
    swept: bool = False
    rooms: tuple[str, ...] = field(default_factory=tuple)

    def fields(self) -> dict[bytes, bytes]:
        """The stream entry a gateway would write for this event."""
        out = {b"id": self.id, b"kind": self.kind, b"ts": str(self.ts), b"tenant": self.tenant,
               b"user": self.user, b"room": self.room, b"conn": self.conn,
               b"seq": str(self.seq), b"node": self.node, b"type": self.type,
               b"status": self.status, b"offset": self.offset, b"to": self.to,
               b"source": self.source, b"replay": "1" if self.replay else ""}
        if self.rooms:
            out[b"rooms"] = json.dumps(list(self.rooms))
        if self.kind == "api":
            method, _, rest = self.api.partition(" ")
            route, _, code = rest.partition(" ")
            out.update({b"method": method, b"route": route, b"code": code})
        return {k: v.encode() for k, v in out.items() if v}

    def packed(self) -> bytes:
        if self.swept:  # not a gateway event: made here, by the sweep
            packed = _pack(self.kind.encode(), str(self.ts).encode(), self.id.encode(),
                           self.user.encode(), b"", self.conn.encode(), str(self.seq).encode(),
                           self.node.encode(), b"", b"", b"", b"", b"", b"", False, b"s")
            result = None if packed is None else (self.tenant, packed)
        else:
            result = pack_fields(self.fields())
        if result is None:
            raise ValueError(f"not a valid activity event: {self}")
        return result[1]
