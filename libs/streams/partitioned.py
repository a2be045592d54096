"""A service's reader of every event partition: one `StreamConsumer` per lane.

A lane is what one XREADGROUP can name together. On one Redis that is every
partition: one blocking read covers them all, as the single stream did. On a Redis
Cluster a command's keys must share a slot and each partition has its own, so each
partition is a lane of its own, read by its own blocking XREADGROUP on the master
that holds it: a cluster's masters share the stream's load, and a failover stalls
only the lanes of the master that failed. Every lane uses the same consumer name
(a consumer group is per stream, so the names cannot clash) and the same handler;
their counts add up in `stats`, and a lane that dies takes the others down with it,
so the service's health reports one dead consumer, not a partial one. The service's
batch setting is what one process reads at a time over all partitions, as it was for
the single stream: a lane of k of n partitions reads batch·k/n, so 16 lanes do not
hold 16 batches of work at once (work held longer than the claim idle time would be
claimed, and done twice).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from goldwire.store.connect import sharded
from goldwire.streams.consumer import ConsumerStats, StreamConsumer, consumer_name

MakeLane = Callable[[list[str], str], StreamConsumer]  # (streams, consumer name) -> lane


def lanes_of(redis: Any, streams: Sequence[str]) -> list[list[str]]:
    """The streams one XREADGROUP can read together, grouped."""
    if sharded(redis):
        return [[stream] for stream in streams]
    return [list(streams)]


class PartitionedConsumer:
    """The lanes of one service process, seen from outside as one consumer."""

    def __init__(self, redis: Any, group: str, make_lane: MakeLane) -> None:
        self.redis = redis
        self.group = group
        self.name = consumer_name()
        self.make_lane = make_lane
        self.lanes: list[StreamConsumer] = []
        self.streams: list[str] = []

    def read(self, streams: Sequence[str]) -> None:
        """Set the streams to read (before `ensure_group` and `run`)."""
        self.streams = list(streams)
        self.lanes = [self.make_lane(lane, self.name) for lane in lanes_of(self.redis, streams)]
        for lane in self.lanes:  # the batch is the process's, shared out over its lanes
            lane.batch = max(1, -(-lane.batch * len(lane.streams) // len(self.streams)))

    async def ensure_group(self) -> None:
        for lane in self.lanes:
            await lane.ensure_group()

    async def run(self) -> None:
        """Run every lane until one ends (it raised: the others stop too)."""
        tasks = [asyncio.create_task(lane.run(), name=f"{self.group}-lane-{i}")
                 for i, lane in enumerate(self.lanes)]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def stats(self) -> ConsumerStats:
        """Every lane's counts added up (the latest batch time, running if all run)."""
        total = ConsumerStats(running=bool(self.lanes))
        for lane in self.lanes:
            st = lane.stats
            for field in ("handled", "batches", "claimed", "failures", "dead_lettered",
                          "lag", "pending"):
                setattr(total, field, getattr(total, field) + getattr(st, field))
            total.last_batch_at = max(total.last_batch_at, st.last_batch_at)
            total.running = total.running and st.running
        return total

    async def lag(self) -> int:
        """Entries not yet delivered to the group, over every partition."""
        return sum(await asyncio.gather(*(lane.lag() for lane in self.lanes)))

    def __repr__(self) -> str:
        return (f"PartitionedConsumer({self.group!r}, {len(self.streams)} streams in "
                f"{len(self.lanes)} lanes)")


__all__ = ["PartitionedConsumer", "lanes_of"]
