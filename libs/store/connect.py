"""The Redis client a URL needs: a plain one, or a cluster-aware one.

`REDIS_URL` may name a plain Redis or any node of a Redis Cluster, and nothing
else is configured: `connect` asks the server once (`INFO cluster`) and gives a
`redis.asyncio.Redis` or a `redis.asyncio.cluster.RedisCluster`. The rest of the
code writes to either through the few calls that differ, kept here:

- `publish`: a cluster publishes room, user and tenant messages with SPUBLISH
  (sharded pub/sub, Redis 7.0+): the message goes to the shard that owns the
  channel's slot, not to every node over the cluster bus. A plain Redis keeps
  PUBLISH, so Redis 6 still works.
- `node_publish`: a gateway's own channel stays classic pub/sub on a cluster too
  (PUBLISH reaches a subscriber on any node): presence announces a joiner's state
  to its gateway from inside the room's script, on the room's slot, where a sharded
  publish to the node's slot would be refused.

redis-py's asyncio connections pack every command in Python; ours pack with
`hiredis.pack_command` (the same bytes, checked in the tests): measured, packing
was 39% of a presence worker's CPU in its throughput benchmark.

A URL that does not answer when asked is taken for a plain Redis and asked again
by the next client made for it (a process started before its Redis is told so
in the log).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlparse

import hiredis
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, RedisClusterException, RedisError

log = logging.getLogger("goldwire.store.connect")

_MODES: dict[str, bool] = {}

# What Redis being away looks like, on a plain Redis or a cluster: the cluster client
# raises RedisClusterException (not a RedisError) when no node answers for a slot.
STORE_ERRORS: tuple[type[BaseException], ...] = (RedisError, RedisClusterException, OSError,
                                                 TimeoutError)


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


    async def _send_packed_command(self, command: Any) -> None:
        # A transport the server just reset makes uvloop raise RuntimeError (CPython a
        # TypeError) from writelines: neither is a ConnectionError, so no retry layer of
        # redis-py (the cluster client's included) would take it for a lost connection.
        writer = self._writer  # type: ignore[attr-defined]
        if writer is None or writer.transport is None or writer.transport.is_closing():
            raise RedisConnectionError("connection closed by the server")
        await super()._send_packed_command(command)  # type: ignore[misc]


class HiredisConnection(_HiredisPacking, Connection):
    pass


class HiredisSSLConnection(_HiredisPacking, SSLConnection):
    pass


class HiredisUnixConnection(_HiredisPacking, UnixDomainSocketConnection):
    pass


_BY_SCHEME = {"redis": HiredisConnection, "rediss": HiredisSSLConnection,
              "unix": HiredisUnixConnection}


def is_cluster(url: str, timeout: float = 2.0) -> bool | None:
    """Whether the Redis at `url` runs in cluster mode (`INFO cluster`); None when it
    does not answer."""
    import redis  # the sync client: this runs once per URL, before the work starts

    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.info("cluster").get("cluster_enabled"))
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()


def cluster_mode(url: str) -> bool:
    """`is_cluster`, remembered per URL once the server answered."""
    known = _MODES.get(url)
    if known is not None:
        return known
    found = is_cluster(url)
    if found is None:
        log.warning("Redis at %s did not answer; taking it for a plain Redis", _safe(url))
        return False
    _MODES[url] = found
    return found


def connect(url: str, **options: Any) -> Redis | RedisCluster:
    """A client for `url` (options as `Redis.from_url`'s), cluster-aware on a cluster."""
    if urlparse(url).scheme != "unix" and cluster_mode(url):
        options.pop("health_check_interval", None)  # the cluster client checks its own way
        client = RedisCluster.from_url(url, **options)
        connection_class = _BY_SCHEME.get(urlparse(url).scheme)
        if connection_class is not None:  # used for every node it discovers
            client.nodes_manager.connection_kwargs["connection_class"] = connection_class
        return client
    connection_class = _BY_SCHEME.get(urlparse(url).scheme)
    if connection_class is not None:
        options.setdefault("connection_class", connection_class)
    return Redis.from_url(url, **options)


def sharded(client: Any) -> bool:
    """Whether `client` (or the client a pipeline belongs to) talks to a cluster."""
    return isinstance(client, RedisCluster) or type(client).__name__ == "ClusterPipeline"


def publish_command(client: Any) -> str:
    return "SPUBLISH" if sharded(client) else "PUBLISH"


async def publish(client: Any, channel: str | bytes, data: str | bytes) -> int:
    """A room, user or tenant message: SPUBLISH on a cluster, PUBLISH otherwise."""
    return int(await client.execute_command(publish_command(client), channel, data))


async def node_publish(client: Any, channel: str | bytes, data: str | bytes) -> int:
    """A message to one gateway's own channel: classic PUBLISH everywhere (see above)."""
    return int(await client.execute_command("PUBLISH", channel, data))


# How long an acknowledged write waits for a replica to have it (WAIT): a write that a
# master acknowledged and then lost in a failover (replication is asynchronous) would
# be a silent gap. Bounded, so a master whose replica is down still answers.
REPLICA_WAIT_MS = 100


def replicated_master(client: Any, key: str) -> Any:
    """On a cluster, the master of `key`'s slot when it has a replica to wait for
    (a ClusterNode for `target_nodes`); None on a plain Redis or without replicas."""
    if not isinstance(client, RedisCluster):
        return None
    nodes = client.nodes_manager.slots_cache.get(client.keyslot(key))
    if not nodes or len(nodes) < 2:
        return None
    return nodes[0]


def _safe(url: str) -> str:
    parsed = urlparse(url)
    return parsed._replace(netloc=parsed.hostname or "").geturl() if parsed.password else url
