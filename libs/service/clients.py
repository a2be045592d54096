"""The Redis clients a service needs (see goldwire.store.connect for plain or cluster)."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from goldwire.store.connect import (
    HiredisConnection,
    HiredisSSLConnection,
    HiredisUnixConnection,
    connect,
    is_cluster,
)

__all__ = ["HiredisConnection", "HiredisSSLConnection", "HiredisUnixConnection",
           "is_cluster", "jobs_redis_problem", "redis_clients", "redis_from_url"]


def redis_from_url(url: str, **options: Any) -> Any:
    """A client for `url` that packs commands in C, cluster-aware on a cluster."""
    return connect(url, **options)


def redis_clients(url: str) -> tuple[Redis, Redis]:
    """(commands, stream reader). XREADGROUP BLOCK needs a socket that waits longer than
    the block, so the reader has no socket timeout (redis-py 8 would give it 5 s)."""
    commands = redis_from_url(url, socket_timeout=10, socket_connect_timeout=5)
    reader = redis_from_url(url, socket_timeout=None, socket_connect_timeout=5,
                            socket_keepalive=True)
    return commands, reader


def jobs_redis_problem(settings: Any) -> str | None:
    """Why this process cannot run its arq jobs where they would go, or None. arq cannot
    run on a Redis Cluster (its keys carry no hash tag; it uses multi-key transactions),
    so on a cluster the jobs need JOBS_REDIS_URL, a plain Redis."""
    if settings.jobs_redis_url:
        if is_cluster(settings.jobs_redis_url):
            return "JOBS_REDIS_URL is a Redis Cluster node; arq needs a plain Redis there"
        return None
    if is_cluster(settings.redis_url):
        return ("REDIS_URL is a Redis Cluster node and arq cannot run on a cluster: "
                "set JOBS_REDIS_URL to a plain Redis for the jobs")
    return None
