"""Gateway events as the presence service reads them from the event stream."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

PRESENCE_KINDS = frozenset({"connect", "join", "leave", "status", "disconnect"})
STATUSES = frozenset({"online", "away", "busy"})


@dataclass(frozen=True, slots=True)
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
    """
    f = {k.decode(): v.decode() for k, v in fields.items()}
    if f.get("kind") not in PRESENCE_KINDS:
        return None
    try:
        rooms: tuple[str, ...] = ()
        if f.get("rooms"):
            rooms = tuple(str(r) for r in json.loads(f["rooms"]))
        meta = f.get("meta") or "{}"
        if not isinstance(json.loads(meta), dict):
            meta = "{}"
        status = f.get("status", "online")
        return GatewayEvent(
            kind=f["kind"], node=f["node"], conn=f["conn"], seq=int(f["seq"]),
            tenant=f["tenant"], user=f["user"], ts=int(f.get("ts", 0)), name=f.get("name", ""),
            room=f.get("room", ""), status=status if status in STATUSES else "online",
            meta=meta, rooms=rooms,
        )
    except (KeyError, ValueError):
        return None
