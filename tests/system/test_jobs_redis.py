"""JOBS_REDIS_URL: a service's arq jobs on their own plain Redis, its data on REDIS_URL.
arq cannot run on a Redis Cluster (its keys carry no hash tag and it uses multi-key
transactions), so a service whose REDIS_URL is a cluster node refuses to start without
JOBS_REDIS_URL, with one line that says so, and runs when it is set."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from goldwire.cli.redis_server import RedisServer
from tests.support import Presence, until


@pytest.fixture(scope="module")
def jobs_redis() -> Iterator[RedisServer]:
    server = RedisServer(die_with_parent=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster_node() -> Iterator[RedisServer]:
    server = RedisServer(die_with_parent=True, cluster_node=True).start()
    yield server
    server.stop()


def sweeps(presence: Presence) -> float:
    match = re.search(r"^goldwire_presence_sweeps_total(?:\{[^}]*\})? (\S+)$",
                      presence.metrics(), re.M)
    assert match
    return float(match.group(1))


def keys(url: str, pattern: str) -> list[bytes]:
    client = redis.Redis.from_url(url)
    try:
        return list(client.scan_iter(match=pattern, count=1000))
    finally:
        client.close()


async def test_jobs_run_on_their_own_redis(redis_server: Any, jobs_redis: RedisServer,
                                           key_prefix: str) -> None:
    presence = Presence(redis_server.url, key_prefix, presence_sweep_interval=1,
                        jobs_redis_url=jobs_redis.url)
    try:
        presence.start()
        start = sweeps(presence)
        await until(lambda: sweeps(presence) >= start + 2, timeout=15)  # cron jobs tick
        assert keys(jobs_redis.url, f"{key_prefix}:presence:arq*")  # arq's queue and health
        assert keys(redis_server.url, f"{key_prefix}:presence:arq*") == []
        assert not [k for k in keys(redis_server.url, "arq:*") if key_prefix.encode() in k]
        assert keys(redis_server.url, f"{key_prefix}:*")  # the data stays on REDIS_URL
    finally:
        presence.terminate()


def test_a_cluster_without_jobs_redis_is_refused_in_one_line(
        cluster_node: RedisServer, key_prefix: str) -> None:
    presence = Presence(cluster_node.url, key_prefix)
    presence.env.pop("JOBS_REDIS_URL", None)
    run = subprocess.run([sys.executable, "-m", "goldwire.cli", "presence"], env=presence.env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    (line,) = run.stderr.strip().splitlines()
    assert "Redis Cluster" in line and "JOBS_REDIS_URL" in line, run.stderr


async def test_a_cluster_with_jobs_redis_runs(cluster_node: RedisServer, jobs_redis: RedisServer,
                                              key_prefix: str) -> None:
    presence = Presence(cluster_node.url, key_prefix, presence_sweep_interval=1,
                        jobs_redis_url=jobs_redis.url)
    try:
        presence.start()
        start = sweeps(presence)
        await until(lambda: sweeps(presence) >= start + 1, timeout=15)
    finally:
        presence.terminate()
