"""A consumer-group reader: at-least-once, batched, and it takes over the dead.

Each service reads the gateway's event streams (the partitions) with its own group;
one `StreamConsumer` reads the streams one XREADGROUP can name together (all of them
on one Redis; see goldwire.streams.partitioned for a cluster). A batch is
acknowledged only after the handler returned, so a crash redelivers it (the
handlers are idempotent); the XACK goes out in one pipeline with the next
XREADGROUP, which saves a round trip per batch. Entries a dead consumer left
pending are claimed with XAUTOCLAIM once they have been idle for `claim_idle_ms`. A handler that
raises a Redis error leaves its batch pending and is retried with backoff; it
never acknowledges what it did not store.

Any other exception is about the data, not Redis, and retrying would fail forever
(and used to end the loop, unnoticed): the batch is handled again one record at a
time, and each record that still fails is logged with its id, copied to the
dead-letter stream (`dead_letter`, capped at about `dead_letter_maxlen`; its fields
plus `dead_id`, `dead_stream`, `dead_group`, `dead_error`, `dead_at`) and acknowledged. If the loop
itself dies (what no record explains, or a dead letter Redis refuses to store), it
says so in the log and `running` turns false, which the services' /healthz reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from goldwire.store.connect import STORE_ERRORS

log = logging.getLogger("goldwire.streams")

Entry = tuple[bytes, dict[bytes, bytes]]
Chunk = tuple[str, list[Entry]]  # entries read from one stream (ids are per stream)
Handler = Callable[[list[Entry]], Awaitable[None]]


@dataclass
class ConsumerStats:
    handled: int = 0
    batches: int = 0
    claimed: int = 0
    failures: int = 0
    dead_lettered: int = 0
    lag: int = 0
    pending: int = 0  # read by the group, not yet acknowledged (as of the last lag())
    last_batch_at: float = 0.0
    running: bool = False


class DeadLetterError(RuntimeError):
    """A record failed and cannot be set aside either: the loop stops (health fails)
    rather than retry a poison record forever or drop it without a trace."""


DATA_ERRORS_NOT = STORE_ERRORS  # these are retried; anything else is the record's


def consumer_name() -> str:
    """Unique per process, readable in XINFO CONSUMERS."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class StreamConsumer:
    def __init__(self, redis: Redis, streams: Sequence[str], group: str, handle: Handler, *,
                 name: str | None = None, batch: int = 500, block_ms: int = 1000,
                 claim_idle_ms: int = 10_000, claim_every: float = 2.0,
                 dead_letter: str | None = None, dead_letter_maxlen: int = 10_000,
                 linger_ms: int = 0) -> None:
        self.redis = redis  # its socket timeout must exceed block_ms (or be None)
        if isinstance(streams, str):  # a str is a Sequence too: one stream per letter
            raise TypeError("streams is a list of stream names, not one name")
        self.streams = list(streams)
        self._names = {s.encode(): s for s in self.streams}
        self.group = group
        self.name = name or consumer_name()
        self.handle = handle
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.claim_every = claim_every
        self.dead_letter = dead_letter  # None: failed records are only logged
        self.dead_letter_maxlen = dead_letter_maxlen
        # After a read that was not full, wait this long before the next, so entries
        # gather into one batch instead of a read, a handler call and an XACK each (a
        # service whose readers need not answer within milliseconds: sessions, activity).
        self.linger = linger_ms / 1000
        self.stats = ConsumerStats()
        # handled, acknowledged with the next read: stream -> ids
        self._unacked: dict[str, list[bytes]] = {}

    async def ensure_group(self) -> None:
        """Create the group at the start of each stream (state is rebuilt from it)."""
        for stream in self.streams:
            try:
                await self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def run(self) -> None:
        delay = 0.1
        own_pending = True  # after a start or a failure, first finish what we hold
        need_group = True  # after a start or a failure (Redis may have lost the group)
        next_claim = 0.0
        self.stats.running = True
        try:
            while True:
                try:
                    if need_group:
                        await self.ensure_group()
                        need_group = False
                    if own_pending:
                        await self._drain()
                        chunks = await self._read("0")
                        if not chunks:
                            own_pending = False
                            continue
                    else:
                        if time.monotonic() >= next_claim:
                            next_claim = time.monotonic() + self.claim_every
                            await self._claim_dead()
                        chunks = await self._read_next()
                    if chunks:
                        await self._process(chunks)
                        if self.linger and not own_pending and \
                                sum(len(part) for _, part in chunks) < self.batch:
                            await asyncio.sleep(self.linger)
                    else:
                        await self._drain()
                    delay = 0.1
                except asyncio.CancelledError:
                    raise
                except STORE_ERRORS as exc:
                    self.stats.failures += 1
                    own_pending = need_group = True
                    log.warning("%s: stream read/handle failed (%s); retry in %.1fs",
                                self.group, exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
        except Exception:
            log.critical("%s: the stream consumer loop died; health checks now fail",
                         self.group, exc_info=True)
            raise
        finally:
            self.stats.running = False
            await self._abandon()
            await self._ack_before_exit()

    async def _ack_before_exit(self) -> None:
        """Best effort: what is not acknowledged is redelivered, and handled again."""
        for stream, ids in self._unacked.items():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.redis.xack(stream, self.group, *ids), 1.0)
        self._unacked = {}

    # --- what a subclass may change (see the activity service's pipelined reader) --------
    async def _read_next(self) -> list[Chunk]:
        """New entries, waiting up to `block_ms` for some."""
        return await self._read(">")

    async def _drain(self) -> None:
        """Finish work still in flight (nothing is, here: a batch is done when handled)."""

    async def _abandon(self) -> None:
        """The loop ends: drop work in flight (it stays pending and is redelivered)."""

    async def _read(self, start: str, block: bool = True) -> list[Chunk]:
        """Read entries of every stream (`batch` shared out: up to batch/streams of each,
        so a read holds about `batch` whatever the partition count, well within
        `claim_idle_ms` of work) in one XREADGROUP; the
        acknowledgements of handled batches ride along (one round trip for all; an XACK
        sent twice is harmless, so a failed read keeps them)."""
        block_ms = self.block_ms if block else None
        ack, self._unacked = self._unacked, {}
        streams = dict.fromkeys(self.streams, start)
        count = max(1, -(-self.batch // len(self.streams)))
        if not ack:
            res = await self.redis.xreadgroup(self.group, self.name, streams,  # type: ignore[arg-type]
                                              count=count, block=block_ms)
        else:
            pipe = self.redis.pipeline(transaction=False)
            for stream, ids in ack.items():
                pipe.xack(stream, self.group, *ids)
            pipe.xreadgroup(self.group, self.name, streams, count=count,  # type: ignore[arg-type]
                            block=block_ms)
            try:
                res = (await pipe.execute())[-1]
            except BaseException:
                for stream, ids in self._unacked.items():
                    ack.setdefault(stream, []).extend(ids)
                self._unacked = ack
                raise
        chunks: list[Chunk] = []
        for name, entries in res or ():
            kept = [(eid, fields) for eid, fields in entries if fields]
            if kept:
                chunks.append((self._names.get(name) or name.decode(), kept))
        return chunks

    async def _claim_dead(self) -> None:
        for stream in self.streams:
            start = "0-0"
            while True:
                res: Any = await self.redis.xautoclaim(stream, self.group, self.name,
                                                       min_idle_time=self.claim_idle_ms,
                                                       start_id=start, count=self.batch)
                start, entries = res[0], [(i, f) for i, f in res[1] if f]
                if entries:
                    self.stats.claimed += len(entries)
                    log.info("%s: claimed %d entries of a dead consumer on %s", self.group,
                             len(entries), stream)
                    await self._process([(stream, entries)])
                if start in (b"0-0", "0-0") or not entries:
                    break

    async def _process(self, chunks: list[Chunk]) -> None:
        entries = [entry for _, part in chunks for entry in part]
        try:
            await self.handle(entries)
        except DATA_ERRORS_NOT:
            raise
        except Exception:
            log.warning("%s: a batch of %d failed; handling it one record at a time",
                        self.group, len(entries))
            await self._handle_each(chunks)
        for stream, part in chunks:  # acknowledged with the next read
            self._unacked.setdefault(stream, []).extend(eid for eid, _ in part)
        self.stats.handled += len(entries)
        self.stats.batches += 1
        self.stats.last_batch_at = time.time()

    # --- one record at a time, and the dead letters ---------------------------------------
    async def _handle_one(self, entry: Entry) -> None:
        await self.handle([entry])

    async def _handle_each(self, chunks: list[Chunk]) -> None:
        """Handle each record alone; a record that fails (not Redis) becomes a dead
        letter. Redis errors still raise: the whole batch is then retried."""
        for stream, entries in chunks:
            for entry in entries:
                try:
                    await self._handle_one(entry)
                except DATA_ERRORS_NOT:
                    raise
                except Exception as exc:
                    await self._dead_letter(stream, entry, exc)

    async def _dead_letter(self, stream: str, entry: Entry, exc: Exception) -> None:
        eid, fields = entry
        self.stats.dead_lettered += 1
        log.error("%s: record %s failed (%s: %s); moved to %s and acknowledged", self.group,
                  eid.decode(errors="replace"), type(exc).__name__, exc, self.dead_letter,
                  exc_info=exc)
        if self.dead_letter is None:
            return
        record = {**fields, b"dead_id": eid, b"dead_stream": stream.encode(),
                  b"dead_group": self.group.encode(),
                  b"dead_error": f"{type(exc).__name__}: {exc}"[:2000].encode(errors="replace"),
                  b"dead_at": str(int(time.time() * 1000)).encode()}
        try:
            await self.redis.xadd(self.dead_letter, record,  # type: ignore[arg-type]
                                  maxlen=self.dead_letter_maxlen, approximate=True)
        except ResponseError as err:
            if "WRONGTYPE" in str(err):  # no retry can fix that: stop, visibly
                raise DeadLetterError(f"{self.dead_letter} is not a stream: {err}") from err
            raise

    async def lag(self) -> int:
        """Entries not yet delivered to the group over every stream (Redis >= 7); also
        notes its pending entries in `stats.pending` (the same XINFO GROUPS answers, for
        /metrics)."""
        pipe = self.redis.pipeline(transaction=False)
        for stream in self.streams:
            pipe.xinfo_groups(stream)
        lag = pending = 0
        for groups in await pipe.execute():
            for group in groups:
                if group.get("name") in (self.group, self.group.encode()):
                    lag += int(group.get("lag") or 0)
                    pending += int(group.get("pending") or 0)
        self.stats.lag, self.stats.pending = lag, pending
        return lag
