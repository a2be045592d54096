"""Which partition an event goes to: stable across processes, in range, one per user."""

from __future__ import annotations

from collections import Counter
from zlib import crc32

import pytest

from goldwire.protocol.events import KINDS
from goldwire.protocol.keys import Keys
from goldwire.protocol.partitions import (
    ACTIVITY,
    CONNECTION,
    FAMILIES,
    EventStreams,
    family_of,
    partition_of,
)
from goldwire.store.partitions import check_partition_count, stream_for_event
from goldwire.streams.consumer import StreamConsumer


def test_a_users_partition_is_crc32_of_tenant_and_user() -> None:
    # crc32, not hash(): Python salts str hashes per process, and every gateway and
    # RedisPublisher must put one user's events on the same partition.
    assert partition_of("acme", "ada", 16) == crc32(b"acme/ada") % 16
    assert partition_of("acme", None, 16) == crc32(b"acme") % 16
    assert partition_of(None, None, 16) == crc32(b"") % 16
    assert partition_of("acme", "ada", 1) == 0


def test_tenants_users_spread_over_every_partition() -> None:
    counts = Counter(partition_of("acme", f"user{i}", 16) for i in range(16_000))
    assert sorted(counts) == list(range(16))
    assert max(counts.values()) < 1.2 * min(counts.values())  # about 1,000 each


def test_the_same_user_in_another_tenant_is_another_key() -> None:
    assert {partition_of(f"t{i}", "ada", 1024) for i in range(50)} != {
        partition_of("t0", "ada", 1024)}


def test_stream_for_event_reads_str_or_bytes_fields() -> None:
    keys = Keys("gw")
    want = keys.event_partition(partition_of("acme", "ada", 8))
    assert stream_for_event(keys, {"tenant": "acme", "user": "ada"}, 8) == want
    assert stream_for_event(keys, {b"tenant": b"acme", b"user": b"ada"}, 8) == want
    assert want == "gw:{ev/" + str(partition_of("acme", "ada", 8)) + "}"


@pytest.mark.parametrize("count", [0, -1, 1025])
def test_a_count_out_of_range_is_refused(count: int) -> None:
    with pytest.raises(ValueError, match="EVENT_PARTITIONS"):
        check_partition_count(count)


def test_a_stream_name_alone_is_refused() -> None:
    async def handle(entries: object) -> None: ...
    # a str is a Sequence too: it would be read as one stream per letter
    with pytest.raises(TypeError, match="list of stream names"):
        StreamConsumer(None, "gw:{ev/0}", "g", handle)  # type: ignore[arg-type]


def test_only_what_presence_and_sessions_read_goes_to_the_connection_family() -> None:
    streams = EventStreams(Keys("gw"), 16)
    home = partition_of("acme", "ada", 16)
    for kind in ("connect", "disconnect", "join", "leave", "status"):
        assert streams.stream_for(kind, "acme", "ada") == f"gw:{{ev/{home}}}"
    for kind in ("publish", "send", "api", "session_state"):
        assert streams.stream_for(kind, "acme", "ada") == f"gw:{{ea/{home}}}"
    # every kind there is has a family, and the families hold every partition once
    assert {family_of(k) for k in KINDS} == set(FAMILIES)
    assert len(set(streams.all())) == 32
    assert streams.family(CONNECTION) + streams.family(ACTIVITY) == streams.all()
