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
