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

Two families of partitions, by who reads the kind: connection events (connect,
disconnect, join, leave, status), which presence, sessions and activity all read, on
`Keys.event_partition`; and the kinds only activity reads (publish, send, api,
session_state), on `Keys.activity_event_partition`. On a document platform messages far
outnumber joins, and presence and sessions used to read, acknowledge and skip every one
of them. Activity's recording does not depend on the order of its events (it takes
them out of order from several gateways already), so splitting a user's messages from
their joins costs it nothing; presence and sessions keep their per-user order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from zlib import crc32

if TYPE_CHECKING:
    from goldwire.protocol.keys import Keys

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


# The event kinds only the activity service reads (goldwire.protocol.events.KINDS).
ACTIVITY_ONLY_KINDS = frozenset({"publish", "send", "api", "session_state"})
CONNECTION = "connection"  # the family every service reads
ACTIVITY = "activity"  # the family only activity reads
FAMILIES = (CONNECTION, ACTIVITY)


def family_of(kind: str) -> str:
    return ACTIVITY if kind in ACTIVITY_ONLY_KINDS else CONNECTION


@dataclass(frozen=True)
class EventStreams:
    """A deployment's event partitions: where each event goes, what each service reads."""

    keys: Keys
    count: int

    def family(self, name: str) -> list[str]:
        if name == CONNECTION:
            return self.keys.event_partitions(self.count)
        if name == ACTIVITY:
            return self.keys.activity_event_partitions(self.count)
        raise ValueError(f"no event family {name!r}")

    def all(self) -> list[str]:
        return [stream for name in FAMILIES for stream in self.family(name)]

    def stream_for(self, kind: str, tenant: str | None, user: str | None) -> str:
        """The partition an event of this kind, tenant and user is written to."""
        index = partition_of(tenant, user, self.count)
        if family_of(kind) == ACTIVITY:
            return self.keys.activity_event_partition(index)
        return self.keys.event_partition(index)
