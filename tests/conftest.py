"""Shared fixtures: one real private Redis per session, a unique key prefix per test.

Why a private Redis: tests must never depend on whatever runs on 6379. It is
started through `goldwire.cli.redis_pick` (Docker when an engine answers or
GOLDWIRE_TEST_DOCKER=1, else the local redis-server / wheel valkey-server).

Crash tests may `kill()` the session server but must `restart()` it before
they end (use try/finally): every later test shares it.

Plain Redis and Redis Cluster, like Starlette's anyio backends: a test that asks for
`data_redis` runs twice, ids `[plain]` and `[cluster]`, and gets a `RedisBackend`
(`.url`, `.jobs_url`, `.is_cluster`, `.name`)::

    def test_x(data_redis, key_prefix):
        gw = Gateway(data_redis.url, key_prefix).start()   # jobs: JOBS_REDIS_URL is set

"plain" is the session `redis_server`; "cluster" is the session `redis_cluster` (3
masters + 3 replicas, started only when a test first asks for it, ~2-3 s) with its own
plain jobs Redis, exported as JOBS_REDIS_URL for the test's duration so every process it
starts puts arq there. One backend only: `@pytest.mark.parametrize("data_redis",
["cluster"], indirect=True)`. A test that kills a node of the session cluster must bring
it back (`redis_cluster.restart(node)`) before it ends, as with `redis_server`.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from goldwire.cli.redis_cluster import LocalCluster, find_cluster_cli
from goldwire.cli.redis_pick import CLUSTER_ENV, PrivateRedis, start_test_redis
from goldwire.cli.redis_server import RedisServer
from tests.redis_backends import REDIS_BACKENDS, RedisBackend


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


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """A private Redis Cluster, 3 masters + 3 replicas (`LocalCluster`): `.url`,
    `.nodes`, `.masters()`, `kill_master(i)`, `wait_for_failover`, `restart(node)`.
    Skipped, saying why, when no redis-cli/valkey-cli can create it."""
    if find_cluster_cli() is None:
        pytest.skip("no redis-cli or valkey-cli to create a Redis Cluster with")
    cluster = LocalCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def cluster_jobs_redis() -> Iterator[RedisServer]:
    """The plain Redis for arq's jobs beside `redis_cluster` (arq cannot run on a cluster)."""
    server = RedisServer(die_with_parent=True).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=REDIS_BACKENDS)
def data_redis(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> RedisBackend:
    """The data Redis of a test that runs on both backends; see the module docstring."""
    if request.param == "cluster":
        cluster: LocalCluster = request.getfixturevalue("redis_cluster")
        jobs: RedisServer = request.getfixturevalue("cluster_jobs_redis")
        monkeypatch.setenv("JOBS_REDIS_URL", jobs.url)
        return RedisBackend("cluster", cluster.url, jobs.url)
    server: PrivateRedis = request.getfixturevalue("redis_server")
    return RedisBackend("plain", server.url, os.environ.get("JOBS_REDIS_URL") or server.url)


@pytest.fixture
def key_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A prefix no other test uses; its keys are deleted afterwards (best effort)."""
    prefix = "gwtest:" + uuid.uuid4().hex[:8]
    yield prefix
    # Only clean up when the test used Redis anyway; never start it just for this.
    if "redis_server" in request.fixturenames:
        server: PrivateRedis = request.getfixturevalue("redis_server")
        client = redis.Redis.from_url(server.url, socket_timeout=1.0, socket_connect_timeout=1.0)
        with contextlib.suppress(redis.RedisError, OSError):
            keys = list(client.scan_iter(match=prefix + "*", count=500))
            if keys:
                client.unlink(*keys)
        client.close()
    if "data_redis" in request.fixturenames:  # keys left on the session cluster, too
        backend: RedisBackend = request.getfixturevalue("data_redis")
        if backend.is_cluster:
            rc = redis.RedisCluster.from_url(backend.url, socket_timeout=1.0)
            with contextlib.suppress(redis.RedisError, OSError):
                for key in list(rc.scan_iter(match=prefix + "*", count=500)):
                    rc.unlink(key)
            rc.close()
