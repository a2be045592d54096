"""The partitioned event stream on real Redis: the gateway's outbox puts a user's events
on one partition in order, every service reads every partition (one XREADGROUP on one
Redis, one lane per partition on a cluster), acknowledges per stream, claims a dead
consumer's entries on each, and sets a bad record aside naming its stream; the count is
agreed, and the pre-partition stream is still read while it exists."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from goldwire.cli.redis_server import RedisServer
from goldwire.protocol.keys import Keys
from goldwire.protocol.partitions import CONNECTION, FAMILIES, EventStreams, partition_of
from goldwire.store.connect import connect, sharded
from goldwire.store.partitions import (
    PartitionMismatchError,
    agree_on_partitions,
    event_streams,
    group_backlog,
    streams_to_read,
)
from goldwire.streams.consumer import Entry, StreamConsumer
from goldwire.streams.partitioned import PartitionedConsumer, lanes_of
from services.gateway.metrics import GatewayMetrics
from services.gateway.outbox import Outbox

pytestmark = pytest.mark.asyncio
GROUP = "g"


@pytest.fixture(params=["plain", "cluster"])
async def client(request: pytest.FixtureRequest, plain_redis: RedisServer) -> AsyncIterator[Any]:
    url = plain_redis.url if request.param == "plain" else request.getfixturevalue(
        "redis_server").url
    redis = connect(url, socket_timeout=None)
    try:
        yield redis
    finally:
        await redis.aclose()


class Recorder:
    """A handler that records what it got and can be told to fail on one record."""

    def __init__(self, poison: bytes | None = None) -> None:
        self.seen: list[dict[bytes, bytes]] = []
        self.poison = poison

    async def __call__(self, entries: list[Entry]) -> None:
        for _, fields in entries:
            if fields.get(b"n") == self.poison:
                raise ValueError("poison record")
        self.seen.extend(fields for _, fields in entries)


async def until(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_the_outbox_keeps_a_users_events_on_one_partition_in_order(client,
                                                                           key_prefix) -> None:
    keys = Keys(key_prefix)
    outbox = Outbox(client, EventStreams(keys, 4), "n1", 1000, GatewayMetrics())
    users = [f"u{i}" for i in range(12)]
    for seq in range(1, 6):
        for user in users:
            outbox.event("status", user=user, tenant="acme", seq=seq)
    outbox.event("publish", user="u0", tenant="acme", room="doc:1", seq=6)
    outbox.event("api", tenant="acme", route="/x")  # no user: the tenant's partition
    await outbox.flush()
    by_stream = {s: await client.xrange(s) for s in EventStreams(keys, 4).all()}
    assert sum(len(v) for v in by_stream.values()) == 5 * len(users) + 2
    for user in users:
        home = keys.event_partition(partition_of("acme", user, 4))
        mine = [int(f[b"seq"]) for _, f in by_stream[home] if f.get(b"user") == user.encode()]
        assert mine == [1, 2, 3, 4, 5], user
    assert len([s for s in keys.event_partitions(4) if by_stream[s]]) > 1  # 12 users: several
    # what only activity reads goes to the other family: presence and sessions never see it
    [(_, published)] = by_stream[keys.activity_event_partition(partition_of("acme", "u0", 4))]
    assert published[b"kind"] == b"publish" and published[b"seq"] == b"6"
    [(_, api)] = by_stream[keys.activity_event_partition(partition_of("acme", None, 4))]
    assert api[b"kind"] == b"api"


async def test_a_consumer_reads_every_partition_and_acknowledges_each(client,
                                                                       key_prefix) -> None:
    keys = Keys(key_prefix)
    streams = keys.event_partitions(3)
    recorder = Recorder()
    consumer = PartitionedConsumer(client, GROUP, lambda lane, name: StreamConsumer(
        client, lane, GROUP, recorder, name=name, block_ms=100))
    consumer.read(streams)
    assert len(consumer.lanes) == (3 if sharded(client) else 1)
    await consumer.ensure_group()
    for i in range(30):
        await client.xadd(streams[i % 3], {"n": str(i)})
    task = asyncio.create_task(consumer.run())
    try:
        async def all_seen() -> bool:
            return len(recorder.seen) == 30
        await until(all_seen)
        assert sorted(int(f[b"n"]) for f in recorder.seen) == list(range(30))
        for i in range(30, 33):  # the next read carries the acknowledgements
            await client.xadd(streams[i % 3], {"n": str(i)})

        async def acknowledged() -> bool:
            return len(recorder.seen) == 33 and \
                (await group_backlog(client, keys, GROUP, 3))[0] <= 3
        await until(acknowledged)
        assert consumer.stats.handled == 33
        assert await consumer.lag() == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # at exit it acknowledged what it had handled
    assert await group_backlog(client, keys, GROUP, 3) == (0, 0)


async def test_a_dead_consumers_entries_are_claimed_on_every_partition(client,
                                                                         key_prefix) -> None:
    keys = Keys(key_prefix)
    streams = keys.event_partitions(3)
    for stream in streams:
        await client.xgroup_create(stream, GROUP, id="0", mkstream=True)
        await client.xadd(stream, {"n": stream})
        # read by a consumer that then died: pending, never acknowledged
        await client.xreadgroup(GROUP, "dead", {stream: ">"}, count=10)
    assert (await group_backlog(client, keys, GROUP, 3))[0] == 3
    recorder = Recorder()
    lanes = [StreamConsumer(client, lane, GROUP, recorder, name="alive", block_ms=100,
                            claim_idle_ms=0, claim_every=0.05)
             for lane in lanes_of(client, streams)]
    tasks = [asyncio.create_task(lane.run()) for lane in lanes]
    try:
        async def claimed() -> bool:
            return len(recorder.seen) == 3
        await until(claimed)
        assert sorted(f[b"n"].decode() for f in recorder.seen) == sorted(streams)
        assert sum(lane.stats.claimed for lane in lanes) == 3
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert (await group_backlog(client, keys, GROUP, 3))[0] == 0


async def test_a_bad_record_is_dead_lettered_with_its_stream(client, key_prefix) -> None:
    keys = Keys(key_prefix)
    streams = keys.event_partitions(2)
    recorder = Recorder(poison=b"bad")
    consumer = PartitionedConsumer(client, GROUP, lambda lane, name: StreamConsumer(
        client, lane, GROUP, recorder, name=name, block_ms=100,
        dead_letter=keys.dead_letters()))
    consumer.read(streams)
    await consumer.ensure_group()
    await client.xadd(streams[0], {"n": "good-0"})
    bad_id = await client.xadd(streams[1], {"n": "bad"})
    await client.xadd(streams[1], {"n": "good-1"})
    task = asyncio.create_task(consumer.run())
    try:
        async def handled() -> bool:
            return {f[b"n"] for f in recorder.seen} == {b"good-0", b"good-1"} and \
                consumer.stats.dead_lettered == 1
        await until(handled)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    [(_, dead)] = await client.xrange(keys.dead_letters())
    assert dead[b"dead_id"] == bad_id and dead[b"dead_stream"] == streams[1].encode()
    assert dead[b"dead_group"] == GROUP.encode() and b"poison record" in dead[b"dead_error"]
    assert await group_backlog(client, keys, GROUP, 2) == (0, 0)


async def test_the_count_is_agreed_and_the_legacy_stream_is_read(client, key_prefix) -> None:
    keys = Keys(key_prefix)
    assert await streams_to_read(client, keys, 4, (CONNECTION,)) == keys.event_partitions(4)
    assert await streams_to_read(client, keys, 4, FAMILIES) == [
        *keys.event_partitions(4), *keys.activity_event_partitions(4)]
    assert await agree_on_partitions(client, keys, 4) == 4
    with pytest.raises(PartitionMismatchError, match=r"EVENT_PARTITIONS=8.*has 4 partitions"):
        await agree_on_partitions(client, keys, 8)
    # an old gateway, during a rolling upgrade, still writes the single stream
    await client.xadd(keys.legacy_events(), {"n": "old"})
    streams = await streams_to_read(client, keys, 4, (CONNECTION,))
    assert streams == [*keys.event_partitions(4), keys.legacy_events()]
    recorder = Recorder()
    consumer = PartitionedConsumer(client, GROUP, lambda lane, name: StreamConsumer(
        client, lane, GROUP, recorder, name=name, block_ms=100))
    consumer.read(streams)
    await consumer.ensure_group()
    task = asyncio.create_task(consumer.run())
    try:
        async def read_old() -> bool:
            return recorder.seen == [{b"n": b"old"}]
        await until(read_old)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)



async def test_unset_the_count_is_the_deployments_or_the_default_for_the_redis(
        client, key_prefix) -> None:
    keys = Keys(key_prefix)
    # a new deployment: 16 where partitions spread over masters, 1 on one Redis, where
    # a blocking read over many streams only costs more
    want = 16 if sharded(client) else 1
    assert await agree_on_partitions(client, keys, None) == want
    assert await client.get(keys.event_partition_count()) == str(want).encode()
    # a process with EVENT_PARTITIONS unset takes what is recorded, whatever it is
    other = Keys(key_prefix + ":other")
    await agree_on_partitions(client, other, 5)
    assert (await event_streams(client, other, None)).count == 5
    assert (await event_streams(client, other, 5)).count == 5


async def test_a_lingering_reader_gathers_what_arrives_into_one_batch(client, key_prefix) -> None:
    keys = Keys(key_prefix)
    [stream] = keys.event_partitions(1)
    calls: list[int] = []

    async def handle(entries: list[Entry]) -> None:
        calls.append(len(entries))

    lane = StreamConsumer(client, [stream], GROUP, handle, block_ms=100, linger_ms=400)
    await lane.ensure_group()
    task = asyncio.create_task(lane.run())
    try:
        await client.xadd(stream, {"n": "0"})

        async def first() -> bool:
            return calls == [1]
        await until(first)
        for i in range(1, 6):  # while it lingers after a read that was not full
            await client.xadd(stream, {"n": str(i)})

        async def gathered() -> bool:
            return sum(calls) == 6
        await until(gathered)
        assert calls == [1, 5]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
