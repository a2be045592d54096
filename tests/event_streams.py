"""The gateway's partitioned event stream, seen whole, for tests that read or write it.

A deployment writes two families of `EVENT_PARTITIONS` streams (default 16;
goldwire.protocol.partitions);
a test that wants "the event stream" reads them all and orders the entries by id (each
id starts with its Redis millisecond), and writes an event where the gateway would.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from goldwire.protocol.keys import Keys
from goldwire.protocol.partitions import DEFAULT_EVENT_PARTITIONS, EventStreams
from goldwire.store import partitions


def stream_of(prefix: str, event: Mapping[Any, Any],
              count: int = DEFAULT_EVENT_PARTITIONS) -> str:
    """The partition the gateway would write this event to (by its tenant and user)."""
    return partitions.stream_for_event(Keys(prefix), event, count)


def _order(entry_id: Any) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


async def read_all(redis: Any, prefix: str,
                   count: int = DEFAULT_EVENT_PARTITIONS) -> list[tuple[Any, Any]]:
    """Every (id, fields) on every partition of both families, oldest first."""
    entries: list[tuple[Any, Any]] = []
    for stream in EventStreams(Keys(prefix), count).all():
        entries.extend(await redis.xrange(stream))
    return sorted(entries, key=lambda e: _order(e[0]))


async def group_backlog(redis: Any, prefix: str, group: str,
                        count: int = DEFAULT_EVENT_PARTITIONS) -> tuple[int, int | None]:
    """(pending, lag) of a consumer group over every partition."""
    return await partitions.group_backlog(redis, Keys(prefix), group, count)
