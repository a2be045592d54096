"""The gateway's partitioned event stream, seen whole, for tests that read or write it.

A deployment writes two families of partitions (goldwire.protocol.partitions), as many
as it agreed on in Redis (goldwire.store.partitions: 1 per family on one Redis, 16 on
a cluster, unless EVENT_PARTITIONS says otherwise). A test that wants "the event stream"
reads them all and orders the entries by id (each id starts with its Redis
millisecond; two entries of the same millisecond on different streams have no defined
order, so a test that needs one connection's order sorts by the event's `seq`), and
writes an event where the gateway would.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from goldwire.protocol.keys import Keys
from goldwire.protocol.partitions import EventStreams
from goldwire.store import partitions


async def deployment_streams(redis: Any, prefix: str) -> EventStreams:
    """The deployment's streams (recording the default count if none is yet, as the
    first gateway or service to start would)."""
    return await partitions.event_streams(redis, Keys(prefix), None)


async def stream_of(redis: Any, prefix: str, event: Mapping[Any, Any]) -> str:
    """The partition the gateway would write this event to (by kind, tenant, user)."""
    streams = await deployment_streams(redis, prefix)
    return partitions.stream_for_event(Keys(prefix), event, streams.count)


def _order(entry_id: Any) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


async def read_all(redis: Any, prefix: str) -> list[tuple[Any, Any]]:
    """Every (id, fields) on every partition of both families, oldest first."""
    entries: list[tuple[Any, Any]] = []
    for stream in (await deployment_streams(redis, prefix)).all():
        entries.extend(await redis.xrange(stream))
    return sorted(entries, key=lambda e: _order(e[0]))


async def group_backlog(redis: Any, prefix: str, group: str) -> tuple[int, int | None]:
    """(pending, lag) of a consumer group over every partition."""
    streams = await deployment_streams(redis, prefix)
    return await partitions.group_backlog(redis, Keys(prefix), group, streams.count)
