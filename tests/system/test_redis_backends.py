"""The `data_redis` fixture (tests/conftest.py): a system test that asks for it runs on a
plain Redis and on the 3-master cluster, and gets the URLs its processes need. Gateways
on it: tests/system/test_cluster.py::test_rooms_users_and_broadcasts_cross_gateways."""

from __future__ import annotations

import os

import redis
from redis.cluster import RedisCluster

from tests.support import Presence


def _info_cluster(url: str) -> dict:
    client = redis.Redis.from_url(url, socket_timeout=2.0, decode_responses=True)
    try:
        return client.info("cluster")
    finally:
        client.close()


def test_each_backend_is_what_it_says(data_redis, key_prefix) -> None:
    assert data_redis.name in ("plain", "cluster")
    jobs = _info_cluster(data_redis.jobs_url)
    assert jobs["cluster_enabled"] == 0  # arq's Redis is never a cluster
    if not data_redis.is_cluster:
        return
    assert _info_cluster(data_redis.url)["cluster_enabled"] == 1
    rc = RedisCluster.from_url(data_redis.url, socket_timeout=2.0, decode_responses=True)
    try:
        assert int(rc.cluster_info()["cluster_size"]) == 3
        # Keys in many slots, written through any node the URL names: a real cluster.
        masters = {rc.get_node_from_key(f"{key_prefix}:{i}").name for i in range(30)}
        assert len(masters) == 3
    finally:
        rc.close()


def test_processes_started_in_the_test_get_the_jobs_redis(data_redis, key_prefix) -> None:
    service = Presence(data_redis.url, key_prefix)  # built, not started: env only
    assert service.env["REDIS_URL"] == data_redis.url
    assert service.env.get("JOBS_REDIS_URL", data_redis.url) == data_redis.jobs_url
    if data_redis.is_cluster:
        assert os.environ["JOBS_REDIS_URL"] == data_redis.jobs_url != data_redis.url
        assert data_redis.env() == {
            "REDIS_URL": data_redis.url,
            "JOBS_REDIS_URL": data_redis.jobs_url,
        }
