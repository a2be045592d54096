"""The Redis clients a service needs, packing commands in C.

redis-py's asyncio connections pack every command in Python (its synchronous
ones use hiredis when it is installed): measured, that was 39% of a presence
worker's CPU in its throughput benchmark. `redis_from_url` gives clients whose
connections pack with `hiredis.pack_command` (same bytes, checked in the tests).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import DataError


class _HiredisPacking:
    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str):  # "SCRIPT LOAD" is two words on the wire
            args = (*args[0].encode().split(), *args[1:])
        elif b" " in args[0]:
            args = (*args[0].split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError as exc:  # what redis-py raises for a value it cannot send
            raise DataError(str(exc)) from exc


class HiredisConnection(_HiredisPacking, Connection):
    pass


class HiredisSSLConnection(_HiredisPacking, SSLConnection):
    pass


class HiredisUnixConnection(_HiredisPacking, UnixDomainSocketConnection):
    pass


_BY_SCHEME = {"redis": HiredisConnection, "rediss": HiredisSSLConnection,
              "unix": HiredisUnixConnection}


def redis_from_url(url: str, **options: Any) -> Redis:
    """`Redis.from_url` with connections that pack commands in C."""
    connection_class = _BY_SCHEME.get(urlparse(url).scheme)
    if connection_class is not None:
        options.setdefault("connection_class", connection_class)
    return Redis.from_url(url, **options)


def redis_clients(url: str) -> tuple[Redis, Redis]:
    """(commands, stream reader). XREADGROUP BLOCK needs a socket that waits longer than
    the block, so the reader has no socket timeout (redis-py 8 would give it 5 s)."""
    commands = redis_from_url(url, socket_timeout=10, socket_connect_timeout=5)
    reader = redis_from_url(url, socket_timeout=None, socket_connect_timeout=5,
                            socket_keepalive=True)
    return commands, reader


def is_cluster(url: str, timeout: float = 2.0) -> bool | None:
    """Whether the Redis at `url` runs in cluster mode (`INFO cluster`); None when it
    does not answer (the caller starts as usual and its clients retry)."""
    import redis  # the sync client: this runs once, before the event loop starts

    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.info("cluster").get("cluster_enabled"))
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()


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
