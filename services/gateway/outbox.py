"""Fire-and-forget Redis writes, batched, in order, retried: gateway events and bookkeeping.

The gateway forwards connect, disconnect, join, leave, publish and status
events to the partitioned event stream for the presence, sessions and activity
services: a user's events to their partition, in order, the kinds only activity reads
to their own family (goldwire.protocol.partitions); each family capped at `maxlen`. Each
event carries an id unique across nodes, the node id, the connection id and
a per-connection sequence number, so consumers can drop duplicates and
order a connection's events. Writes go out on the next turn of the event
loop, in one pipeline with everything queued meanwhile: no timer adds latency
when the gateway is calm, and under load batches grow by themselves while the
previous pipeline is in flight. When Redis is away they wait (up to
`MAX_PENDING`) and go out when it is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from redis.exceptions import (
    AskError,
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    MovedError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)

from goldwire.protocol.events import event_fields

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from goldwire.gateway.metrics import GatewayMetrics
    from goldwire.protocol.partitions import EventStreams

log = logging.getLogger("goldwire.gateway.outbox")

MAX_BATCH = 500
MAX_PENDING = 200_000


# Error replies that mean "not now": Redis full, loading, a replica, a cluster mid-failover.
# redis-py turns some into their own classes (and drops the code from the message).
RETRYABLE_ERRORS = (OutOfMemoryError, BusyLoadingError, ReadOnlyError, ClusterDownError,
                    TryAgainError, MasterDownError, AskError, MovedError)
RETRYABLE_REPLIES = ("OOM", "LOADING", "READONLY", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN",
                     "NOREPLICAS", "BUSY", "MOVED", "ASK")


def retryable(error: Exception) -> bool:
    """Whether a command's error reply may succeed later (else it never will)."""
    if isinstance(error, RETRYABLE_ERRORS) or not isinstance(error, ResponseError):
        return True  # also a connection or cluster client error: Redis, not the command
    return str(error).split(" ", 1)[0].upper() in RETRYABLE_REPLIES


class Outbox:
    def __init__(self, redis: Redis, streams: EventStreams, node_id: str, maxlen: int,
                 metrics: GatewayMetrics) -> None:
        self.redis = redis
        self.node_id = node_id
        self.events_maxlen = maxlen
        self.use(streams)
        self.metrics = metrics
        self._queue: deque[tuple[Any, ...]] = deque()
        self._wakeup = asyncio.Event()
        self._counter = 0
        self._task: asyncio.Task[None] | None = None
        self._prefix = f"{node_id}-{int(time.time() * 1000)}-"

    def use(self, streams: EventStreams) -> None:
        """Write events to these streams (the deployment's, once agreed at start)."""
        self.streams = streams
        self.maxlen = max(1, -(-self.events_maxlen // streams.count))  # per partition

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox")

    def event(self, kind: str, conn: Any = None, **fields: Any) -> None:
        """Queue one gateway event (goldwire.protocol.events says what each kind holds)."""
        self._counter += 1
        if conn is not None:
            fields["conn"] = conn.id
            fields["seq"] = conn.next_seq()
            if conn.principal is not None:
                fields["user"] = conn.principal.user_id
                fields["tenant"] = conn.principal.tenant
            fields["session"] = conn.session_id
        entry = event_fields(kind, self._prefix + str(self._counter), self.node_id,
                             int(time.time() * 1000), **fields)
        self.metrics.events_emitted += 1
        stream = self.streams.stream_for(kind, fields.get("tenant"), fields.get("user"))
        self.command("XADD", stream, "MAXLEN", "~", self.maxlen, "*",
                     *[x for kv in entry.items() for x in kv])

    def command(self, *args: Any) -> None:
        """Queue one Redis command to run after the ones queued before it."""
        if len(self._queue) >= MAX_PENDING:
            self._queue.popleft()
            self.metrics.events_dropped += 1
        self._queue.append(args)
        self._wakeup.set()

    async def _run(self) -> None:
        delay = 0.05
        while True:
            await self._wakeup.wait()
            await asyncio.sleep(0)  # let this loop turn queue what it will, then write it all
            try:
                await self.flush()
                delay = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox flush failed (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def flush(self) -> None:
        """Write everything queued so far. A batch that fails stays queued; a command
        Redis refuses for now (OOM, LOADING, READONLY, CLUSTERDOWN, ...) stays queued
        with everything after it and raises, so `_run` retries from it, in order (the
        commands after it in the batch ran already: an event sent twice has the same id,
        which consumers drop, and every bookkeeping write is idempotent). One Redis
        refuses for good (WRONGTYPE, a bad argument) is logged, counted and dropped,
        since no retry would change the answer and it must not hold up the rest."""
        while self._queue:
            batch = [self._queue[i] for i in range(min(MAX_BATCH, len(self._queue)))]
            pipe = self.redis.pipeline(transaction=False)
            for args in batch:
                pipe.execute_command(*args)
            results = await pipe.execute(raise_on_error=False)
            for args, result in zip(batch, results, strict=False):
                if isinstance(result, Exception):
                    if retryable(result):
                        raise result
                    self.metrics.outbox_refused += 1
                    log.error("outbox: Redis refused %s %s for good (%s); dropped",
                              args[0], args[1] if len(args) > 1 else "", result)
                self._queue.popleft()
        self._wakeup.clear()

    async def close(self, flush_within: float = 5.0) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await asyncio.wait_for(self.flush(), flush_within)
        except Exception as exc:
            log.warning("outbox: %d writes not flushed at shutdown (%s)", len(self._queue), exc)
