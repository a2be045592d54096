"""Pick the backend for a private test Redis: Docker when it answers, else a binary.

`GOLDWIRE_TEST_DOCKER` decides: "1" always tries Docker first (waiting longer
for the engine), "0" never does, anything else tries Docker only when an
engine answers a ping within 2 s. Whatever happens, the caller gets a running
server or an error from the local-binary path, never a Docker error.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Protocol

from goldwire.cli.redis_server import RedisServer

DOCKER_ENV = "GOLDWIRE_TEST_DOCKER"
# "1": the tests' Redis is a one-node Redis Cluster owning every slot (RedisServer's
# `cluster_node`), so a cross-slot command or script fails as on a real cluster.
CLUSTER_ENV = "GOLDWIRE_TEST_REDIS_CLUSTER"


class PrivateRedis(Protocol):
    """What tests may rely on, whichever backend runs Redis."""

    @property
    def url(self) -> str: ...

    @property
    def port(self) -> int: ...

    def kill(self) -> None: ...

    def restart(self) -> None: ...

    def stop(self) -> None: ...


def start_test_redis(environ: Mapping[str, str] | None = None) -> PrivateRedis:
    """Start a private Redis for a test session and return it (running)."""
    env = os.environ if environ is None else environ
    if env.get(CLUSTER_ENV, "").strip() == "1":
        return RedisServer(die_with_parent=True, cluster_node=True).start()
    choice = env.get(DOCKER_ENV, "").strip()
    if choice != "0":
        from goldwire.cli.redis_docker import start_docker_redis

        forced = choice == "1"
        server = start_docker_redis(timeout=30.0 if forced else 2.0)
        if server is not None:
            return server
        if forced:
            print(
                f"{DOCKER_ENV}=1 but Docker did not start Redis; using a local binary",
                file=sys.stderr,
            )
    return RedisServer(die_with_parent=True).start()
