"""Diff pacing: a big room that changes fast gets one presence diff per short interval.

Why: a diff costs one frame per connection in the room, so a room of n
connections that r people join per second costs n * r frame writes per second
when every join is its own diff (1,000 members and 200 joins/s: 200,000 writes/s
on the gateways, and as many reads on the clients). Pacing bounds that to about
`budget` writes per second per room: after a flush, the room's next flush waits
`members / budget` seconds (capped at `max_interval`), and everything that
changes meanwhile goes out in that one diff. A calm room is never delayed: the
first change after an interval flushes at once, and a room of 50 connections
waits at most a millisecond.

Pure bookkeeping, no I/O. Its state is per process and only a hint: what a room
owes is kept in Redis (its `pd`/`ps` hashes, see scripts.py), and a deferred
flush is indexed in the presence due set before the change it defers is
written, so another replica or the sweeper's job flushes it if this process
dies first. Times are wall-clock milliseconds, as in the due set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RoomId = tuple[str, str]  # (tenant, room)

FORGET_AFTER = 10_000  # rooms remembered before the calm ones are first looked for


@dataclass
class Plan:
    """What to do with a room at the end of a batch."""

    flush_now: bool
    index_due: int | None = None  # a new deferred flush to index at this time (ms)


@dataclass
class DiffPacer:
    budget: float  # frame writes per second one room's diffs may cost; 0 = no pacing
    max_interval_ms: float
    _last_flush: dict[RoomId, int] = field(default_factory=dict)
    _size: dict[RoomId, int] = field(default_factory=dict)
    _due: dict[RoomId, int] = field(default_factory=dict)  # deferred, not yet indexed
    _armed: dict[RoomId, int] = field(default_factory=dict)  # deferred and indexed
    _forget_at: int = FORGET_AFTER  # rooms remembered before the next scan for calm ones

    def interval_ms(self, room: RoomId) -> float:
        if self.budget <= 0:
            return 0.0
        return min(self.max_interval_ms, self._size.get(room, 0) * 1000 / self.budget)

    def plan(self, room: RoomId, now: int) -> Plan:
        """Flush now, or leave the change for the room's deferred flush."""
        if room in self._armed or room in self._due:
            return Plan(flush_now=False)  # a flush is already on its way
        last = self._last_flush.get(room)
        interval = self.interval_ms(room)
        if last is None or now - last >= interval:
            return Plan(flush_now=True)
        due = last + int(interval) + 1
        self._due[room] = due
        return Plan(flush_now=False, index_due=due)

    def indexed(self, rooms: list[RoomId]) -> None:
        """The due-set entries of these rooms' deferred flushes are written: arm them."""
        for room in rooms:
            due = self._due.pop(room, None)
            if due is not None:
                self._armed[room] = due

    def not_indexed(self, rooms: list[RoomId]) -> None:
        """Writing failed: forget these deferrals (the batch is retried, and flushes)."""
        for room in rooms:
            self._due.pop(room, None)

    def flushed(self, room: RoomId, now: int, size: int) -> None:
        """The room published what it owed at `now`, having `size` connections."""
        self._last_flush[room] = now
        self._size[room] = size
        if len(self._last_flush) > self._forget_at:
            self._forget_calm(now)

    def next_due(self) -> int | None:
        """When the earliest armed deferred flush is due (ms), if any."""
        return min(self._armed.values(), default=None)

    def take_due(self, now: int) -> list[tuple[RoomId, int]]:
        """Disarm the deferred flushes due by `now`: (room, due time) for the caller to
        flush (or for a sweep of the due set, by any process, if the caller fails)."""
        due = [(room, at) for room, at in self._armed.items() if at <= now]
        for room, _ in due:
            del self._armed[room]
            self._last_flush[room] = now
        return due

    def _forget_calm(self, now: int) -> None:
        calm = [room for room, at in self._last_flush.items()
                if now - at > self.max_interval_ms and room not in self._armed]
        for room in calm:
            del self._last_flush[room]
            self._size.pop(room, None)
        # Many busy rooms: scan again only once as many more were added (amortized O(1)).
        self._forget_at = max(FORGET_AFTER, 2 * len(self._last_flush))
