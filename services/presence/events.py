"""Gateway events as the presence service reads them from the event stream
(goldwire.protocol.events parses every entry; this keeps what presence applies)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from goldwire.protocol.events import MalformedEvent
from goldwire.protocol.events import parse_event as parse_stream_event

PRESENCE_KINDS = frozenset({"connect", "join", "leave", "status", "disconnect"})
_PRESENCE_KINDS_B = frozenset(k.encode() for k in PRESENCE_KINDS)
STATUSES = frozenset({"online", "away", "busy"})


@dataclass(slots=True)  # not frozen: built for every event read; frozen init costs 2x
class GatewayEvent:
    kind: str
    node: str
    conn: str
    seq: int
    tenant: str
    user: str
    ts: int
    name: str = ""
    room: str = ""
    status: str = "online"
    meta: str = "{}"  # JSON object text
    rooms: tuple[str, ...] = field(default_factory=tuple)


def parse_event(fields: dict[bytes, bytes]) -> GatewayEvent | None:
    """The presence-relevant event in a stream entry, or None (other kinds, or malformed).

    Malformed entries are skipped, never retried: a poison entry must not stall the stream.
    The kind is checked on the raw bytes first: most entries (publishes) are not ours.
    """
    if fields.get(b"kind") not in _PRESENCE_KINDS_B:
        return None
    if fields.get(b"presence") == b"off":  # a join or leave in a room without presence
        return None
    try:
        e = parse_stream_event(fields)
    except MalformedEvent:
        return None
    return GatewayEvent(
        kind=e.kind, node=e.node, conn=e.conn, seq=e.seq, tenant=e.tenant, user=e.user,
        ts=e.ts, name=e.name, room=e.room,
        status=e.status if e.status in STATUSES else "online",
        meta=json.dumps(e.meta) if e.meta is not None else "{}",
        rooms=tuple(r for r in e.rooms if r not in e.quiet_rooms) if e.quiet_rooms else e.rooms)
