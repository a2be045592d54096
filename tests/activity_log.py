"""A scripted gateway event log for the activity tests (explicit event times).

`Log` hands out events as a gateway would write them to the event stream (tests/event_streams.py):
unique ids, a per-connection seq, the connection's user and tenant.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from redis.asyncio import Redis

from tests.event_streams import deployment_streams

HOUR = 3_600_000
DAY = 86_400_000
MIN = 60_000


class Log:
    def __init__(self, node: str = "n1") -> None:
        self.node = node
        self.events: list[dict[str, str]] = []
        self._ids = itertools.count(1)
        self._seq: dict[str, int] = {}
        self._conn: dict[str, tuple[str, str]] = {}  # conn -> (user, tenant)

    def add(self, kind: str, ts: int, conn: str | None = None, **fields: Any) -> dict[str, str]:
        entry: dict[str, Any] = {"id": f"{self.node}-1-{next(self._ids)}", "kind": kind,
                                 "node": self.node, "ts": ts}
        if conn is not None:
            self._seq[conn] = self._seq.get(conn, 0) + 1
            user, tenant = self._conn[conn]
            entry.update(conn=conn, seq=self._seq[conn], user=user, tenant=tenant)
        entry.update(fields)
        event = {k: json.dumps(v) if isinstance(v, list | dict) else str(v)
                 for k, v in entry.items() if v is not None}
        self.events.append(event)
        return event

    def connect(self, ts: int, conn: str, user: str, tenant: str = "acme") -> None:
        self._conn[conn] = (user, tenant)
        self.add("connect", ts, conn, name=user.title(), status="online")

    def join(self, ts: int, conn: str, room: str) -> dict[str, str]:
        return self.add("join", ts, conn, room=room)

    def leave(self, ts: int, conn: str, room: str) -> dict[str, str]:
        return self.add("leave", ts, conn, room=room)

    def publish(self, ts: int, conn: str, room: str, type_: str = "user_message") -> None:
        self.add("publish", ts, conn, room=room, type=type_, offset=f"{ts}-0")

    def disconnect(self, ts: int, conn: str, rooms: list[str] | None = None) -> None:
        self.add("disconnect", ts, conn, rooms=rooms or [])


async def write(redis: Redis, prefix: str, events: list[dict[str, str]]) -> None:
    """XADD the events to the gateway event stream, in order, pipelined, each to the
    partition the gateway would write it to."""
    streams = await deployment_streams(redis, prefix)
    for i in range(0, len(events), 1000):
        pipe = redis.pipeline(transaction=False)
        for event in events[i:i + 1000]:
            stream = streams.stream_for(event["kind"], event.get("tenant"), event.get("user"))
            pipe.xadd(stream, event)  # type: ignore[arg-type]
        await pipe.execute()
