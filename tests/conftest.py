"""Shared fixtures: one real private Redis per session, a unique key prefix per test.

Why a private Redis: tests must never depend on whatever runs on 6379. It is
started through `goldwire.cli.redis_pick` (Docker when an engine answers or
GOLDWIRE_TEST_DOCKER=1, else the local redis-server / wheel valkey-server).

Crash tests may `kill()` the session server but must `restart()` it before
they end (use try/finally): every later test shares it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from goldwire.cli.redis_pick import CLUSTER_ENV, PrivateRedis, start_test_redis
from goldwire.cli.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[PrivateRedis]:
    """A running private Redis: `.url`, `.port`, `.kill()`, `.restart()`.

    With GOLDWIRE_TEST_REDIS_CLUSTER=1 it is a one-node Redis Cluster, and the services'
    arq jobs get a plain Redis of their own (JOBS_REDIS_URL), as a cluster needs."""
    server = start_test_redis()
    jobs = None
    if os.environ.get(CLUSTER_ENV) == "1":
        jobs = RedisServer(die_with_parent=True).start()
        os.environ["JOBS_REDIS_URL"] = jobs.url  # every process the tests start reads it
    try:
        yield server
    finally:
        server.stop()
        if jobs is not None:
            os.environ.pop("JOBS_REDIS_URL", None)
            jobs.stop()


@pytest.fixture
def key_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A prefix no other test uses; its keys are deleted afterwards (best effort)."""
    prefix = "gwtest:" + uuid.uuid4().hex[:8]
    yield prefix
    # Only clean up when the test used Redis anyway; never start it just for this.
    if "redis_server" not in request.fixturenames:
        return
    server: PrivateRedis = request.getfixturevalue("redis_server")
    client = redis.Redis.from_url(server.url, socket_timeout=1.0, socket_connect_timeout=1.0)
    with contextlib.suppress(redis.RedisError, OSError):
        keys = list(client.scan_iter(match=prefix + "*", count=500))
        if keys:
            client.unlink(*keys)
    client.close()
