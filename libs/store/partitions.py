"""The deployment's event partition count, kept in Redis so writers and readers agree.

A gateway writing 16 partitions while a service reads 8 would lose half the events
without a word, so the count is a fact of the deployment, not of one process: the
first process to start records it (SET NX), and every process after it takes the
recorded count. One with EVENT_PARTITIONS set otherwise refuses to start, naming both
numbers; one without it takes whatever is recorded. Before anything is recorded the
default depends on the Redis: 16 on a Redis Cluster, where partitions spread the
events over the masters, and 1 on one Redis, where partitions buy nothing (one thread
serves them all) and a blocking read over 16 streams can only cost more (each wake-up
scans every stream it names: +4 to +11% Redis CPU per message by median,
bench/redis_ops.py, within this machine's noise). Changing the count means draining the
streams first (see docs/architecture.md, "Event partitions").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from redis.exceptions import ResponseError

from goldwire.protocol.keys import Keys
from goldwire.protocol.partitions import (
    DEFAULT_EVENT_PARTITIONS,
    MAX_EVENT_PARTITIONS,
    EventStreams,
)
from goldwire.store.connect import sharded


class PartitionMismatchError(RuntimeError):
    """This process's EVENT_PARTITIONS is not the deployment's."""


def check_partition_count(count: int) -> int:
    if not 1 <= count <= MAX_EVENT_PARTITIONS:
        raise ValueError(f"EVENT_PARTITIONS={count} is not between 1 and {MAX_EVENT_PARTITIONS}")
    return count


def default_partitions(redis: Any) -> int:
    """The count a new deployment gets: 16 on a cluster, 1 on one Redis."""
    return DEFAULT_EVENT_PARTITIONS if sharded(redis) else 1


async def recorded_partitions(redis: Any, keys: Keys) -> int | None:
    """The deployment's count, or None before any process recorded one."""
    raw = await redis.get(keys.event_partition_count())
    return None if raw is None else int(raw)


async def agree_on_partitions(redis: Any, keys: Keys, count: int | None) -> int:
    """The deployment's count: `count` (or the default, when None) is recorded if none
    is; a `count` that differs from the recorded one raises PartitionMismatchError
    (one line, for the log and the exit); None takes the recorded one."""
    key = keys.event_partition_count()
    proposed = check_partition_count(count) if count is not None else default_partitions(redis)
    await redis.set(key, proposed, nx=True)
    recorded = await recorded_partitions(redis, keys)
    if recorded is None:  # deleted in between: what we proposed stands
        return proposed
    if count is not None and recorded != count:
        raise PartitionMismatchError(
            f"EVENT_PARTITIONS={count}, but this deployment's event stream has {recorded} "
            f"partitions (Redis key {key}): set EVENT_PARTITIONS={recorded} or leave it "
            f"unset, or drain the streams and delete the key to change it")
    return recorded


async def event_streams(redis: Any, keys: Keys, count: int | None) -> EventStreams:
    """The deployment's event streams, agreed (see agree_on_partitions)."""
    return EventStreams(keys, await agree_on_partitions(redis, keys, count))


async def streams_to_read(redis: Any, keys: Keys, count: int | None,
                          families: tuple[str, ...]) -> list[str]:
    """What a service reads: every partition of its event families, and the
    pre-partition stream while it exists (an old gateway may still write it during a
    rolling upgrade). Agrees on the count first (PartitionMismatchError)."""
    streams = await event_streams(redis, keys, count)
    names = [stream for family in families for stream in streams.family(family)]
    if await redis.exists(keys.legacy_events()):
        names.append(keys.legacy_events())
    return names


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def stream_for_event(keys: Keys, event: Mapping[Any, Any], count: int) -> str:
    """The partition a gateway writes this event to, by its kind, tenant and user (its
    fields as str or bytes keys): for tools and tests that write events themselves."""
    kind = _text(event.get("kind", event.get(b"kind"))) or ""
    tenant = _text(event.get("tenant", event.get(b"tenant")))
    user = _text(event.get("user", event.get(b"user")))
    return EventStreams(keys, count).stream_for(kind, tenant, user)


async def group_table(redis: Any, streams: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Every consumer group on these streams (one pipelined XINFO GROUPS each): group
    name -> lag (not yet read; None when Redis cannot tell for some stream) and pending
    (read, not yet acknowledged) added up, consumers the most any stream has. A stream
    that does not exist yet is left out; if none answers, the first error is raised."""
    pipe = redis.pipeline(transaction=False)
    for stream in streams:
        pipe.xinfo_groups(stream)
    answers = await pipe.execute(raise_on_error=False)
    found = [groups for groups in answers if not isinstance(groups, Exception)]
    if not found:
        raise answers[0] if answers else ValueError("no streams")
    table: dict[str, dict[str, Any]] = {}
    for groups in found:
        for group in groups:
            row = table.setdefault(_text(group.get("name")) or "",
                                   {"lag": 0, "pending": 0, "consumers": 0})
            lag = group.get("lag")
            row["lag"] = None if lag is None or row["lag"] is None else row["lag"] + int(lag)
            row["pending"] += int(group.get("pending") or 0)
            row["consumers"] = max(row["consumers"], int(group.get("consumers") or 0))
    return table


async def group_backlog(redis: Any, keys: Keys, group: str,
                        count: int) -> tuple[int, int | None]:
    """(pending, lag) of a consumer group over every partition it reads (see
    group_table); (0, 0) before any partition exists."""
    try:
        row = (await group_table(redis, EventStreams(keys, count).all())).get(group)
    except ResponseError:  # no partition exists yet
        return 0, 0
    return (0, 0) if row is None else (row["pending"], row["lag"])
