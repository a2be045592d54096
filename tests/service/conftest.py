"""tests/service run on a one-node Redis Cluster that owns every slot (RedisServer's
`cluster_node`). Clients need no redirections, but Redis refuses what a real cluster
would: a multi-key command across slots (CROSSSLOT) and, since every script runs with a
`#!lua` shebang (goldwire.store.lua), a script reaching a key outside its KEYS' slot.
Every Lua script runs in these tests (each has its direct test here), so this is where
"all keys of one call share one slot" is checked for every script."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from goldwire.cli.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(die_with_parent=True, cluster_node=True).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def plain_redis() -> Iterator[RedisServer]:
    """A plain Redis beside the one-node cluster, for what differs on one Redis (one
    XREADGROUP over many streams) or what turns a server's limits down."""
    server = RedisServer(die_with_parent=True).start()
    try:
        yield server
    finally:
        server.stop()
