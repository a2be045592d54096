"""The two Redis clients a service needs."""

from __future__ import annotations

from redis.asyncio import Redis


def redis_clients(url: str) -> tuple[Redis, Redis]:
    """(commands, stream reader). XREADGROUP BLOCK needs a socket that waits longer than
    the block, so the reader has no socket timeout (redis-py 8 would give it 5 s)."""
    commands = Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
    reader = Redis.from_url(url, socket_timeout=None, socket_connect_timeout=5,
                            socket_keepalive=True)
    return commands, reader
