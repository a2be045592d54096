"""Which partition of the event stream an event goes to.

The gateway's events (connect, join, publish, ...) go to `EVENT_PARTITIONS` streams,
`Keys.event_partition(i)`, each on its own hash slot, so on a Redis Cluster the
stream's writes and reads spread over every master instead of sitting on one.
What must stay in order stays on one partition: an event with a user goes to the
partition of its tenant and user (all of that user's connections, on every
gateway), one without (an HTTP publish to a room, an API call) to its tenant's.
Every writer (the gateway, `RedisPublisher`) and every reader (the services) must
agree on the count: `goldwire.store.partitions` keeps the deployment's in Redis and
a process configured otherwise refuses to start.
"""

from __future__ import annotations

from zlib import crc32

DEFAULT_EVENT_PARTITIONS = 16
MAX_EVENT_PARTITIONS = 1024


def partition_of(tenant: str | None, user: str | None, partitions: int) -> int:
    """The partition (0 ≤ p < partitions) of a tenant's user's events, or of the
    tenant's when there is no user. crc32 is stable across processes and languages
    (Python's hash() is salted per process)."""
    if partitions <= 1:
        return 0
    key = f"{tenant or ''}/{user}" if user is not None else f"{tenant or ''}"
    return crc32(key.encode()) % partitions
