"""The shared Redis plumbing of the services, on a real Redis: C-packed commands send
what redis-py would, and pipelined scripts survive Redis forgetting them."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import DataError, ResponseError

from goldwire.service import redis_from_url, run_loading_scripts
from goldwire.service.clients import HiredisConnection
from goldwire.store.lua import BoundScript, parse

ARGS = [
    ("SET", "k", "v"), ("EVALSHA", "abc", 2, "k1", b"k2", 1.5, 3, "é", -7),
    ("XADD", "s", "MAXLEN", "~", 100, "*", "a", b"\x00\xff\r\n"), ("SCRIPT LOAD", "return 1"),
    (b"CLIENT SETNAME", "x"), ("ZADD", "z", 1.0000000001, "m"), ("SET", "k", 10**20),
    ("SET", "k", memoryview(b"abc")), ("SET", "k", ""),
]


@pytest.mark.parametrize("args", ARGS)
def test_hiredis_packing_sends_the_bytes_redis_py_sends(args) -> None:
    assert b"".join(HiredisConnection().pack_command(*args)) == \
        b"".join(Connection().pack_command(*args))


@pytest.mark.parametrize("value", [None, True, {"a": 1}])
def test_a_value_redis_cannot_take_is_a_data_error_as_before(value) -> None:
    with pytest.raises(DataError):
        HiredisConnection().pack_command("SET", "k", value)


async def test_clients_round_trip_commands_pipelines_and_blocking_reads(redis_server) -> None:
    redis = redis_from_url(redis_server.url)
    try:
        await redis.set("{gwtest:packing}", "é\x00" * 1000)
        assert await redis.get("{gwtest:packing}") == ("é\x00" * 1000).encode()
        pipe = redis.pipeline(transaction=False)
        pipe.zadd("{gwtest:packing}:z", {"a": 1.25})
        pipe.zscore("{gwtest:packing}:z", "a")
        pipe.xadd("{gwtest:packing}:s", {"f": b"\xff"})
        assert (await pipe.execute())[1] == 1.25
        got = await redis.xread({"{gwtest:packing}:s": "0"}, block=100)
        assert got[0][1][0][1] == {b"f": b"\xff"}
    finally:
        await redis.delete("{gwtest:packing}", "{gwtest:packing}:z", "{gwtest:packing}:s")
        await redis.aclose()


async def test_pipelined_scripts_are_loaded_again_after_a_script_flush(redis_server) -> None:
    redis = redis_from_url(redis_server.url)
    incr = BoundScript(parse("incr.lua", "-- KEYS[1] counter\n-- ARGV[1] by\n"
                                         "return redis.call('INCRBY', KEYS[1], ARGV[1])"), redis)
    runs = 0

    async def operation() -> list:
        nonlocal runs
        runs += 1
        pipe = redis.pipeline(transaction=False)
        incr.queue(pipe, counter="gwtest:scripted", by=2)
        incr.queue(pipe, counter="gwtest:scripted", by=3)
        return await pipe.execute()

    try:
        await redis.script_flush()
        assert await run_loading_scripts(redis, [incr], operation) == [2, 5]
        assert runs == 2  # NOSCRIPT, loaded, ran again
        assert await run_loading_scripts(redis, [incr], operation) == [7, 10]
        assert runs == 3  # known now: no second try
    finally:
        await redis.delete("gwtest:scripted")
        await redis.aclose()


async def test_a_script_reaching_outside_its_keys_slot_is_refused(redis_server) -> None:
    """The check every script here runs under (tests/service/conftest.py): a key in the
    slot of the script's KEYS is fine, one in another slot fails as on a real cluster.
    Without the loader's shebang Redis 7 would allow it, and this test would fail."""
    script = parse("probe.lua", "-- KEYS[1] home   a key\n-- ARGV[1] other  a key name\n"
                                "redis.call('SET', KEYS[1], 1)\n"
                                "return redis.call('GET', ARGV[1])\n")
    redis = redis_from_url(redis_server.url)
    try:
        probe = BoundScript(script, redis)
        assert await probe(home="{gwtest:probe}:a", other="{gwtest:probe}:b") is None
        with pytest.raises(ResponseError, match="hash to the same slot"):
            await probe(home="{gwtest:probe}:a", other="{gwtest:elsewhere}:b")
    finally:
        await redis.delete("{gwtest:probe}:a")
        await redis.aclose()
