"""Shared fixtures: one real private Redis per session, a unique key prefix per test.

Why a private Redis: tests must never depend on whatever runs on 6379. It is
started through `goldwire.cli.redis_pick` (Docker when an engine answers or
GOLDWIRE_TEST_DOCKER=1, else the local redis-server / wheel valkey-server).

Crash tests may `kill()` the session server but must `restart()` it before
they end (use try/finally): every later test shares it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest
import redis

from goldwire.cli.redis_pick import PrivateRedis, start_test_redis


@pytest.fixture(scope="session")
def redis_server() -> Iterator[PrivateRedis]:
    """A running private Redis: `.url`, `.port`, `.kill()`, `.restart()`."""
    server = start_test_redis()
    try:
        yield server
    finally:
        server.stop()


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
