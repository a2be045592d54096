"""Redis in a Docker container via testcontainers, with the `RedisServer` surface.

Why a second backend: on machines with Docker, a container gives the exact
upstream Redis image regardless of what is installed locally. Why it is not
the default: most development and CI machines here have no Docker engine, so
`redis_pick.start_test_redis` only comes here when Docker answers.

Limits: `pid` is None (the process is not ours); the host port is bound
explicitly so that `restart()` keeps the URL, which a random mapping would not.
Every failure to reach Docker surfaces as None from
`start_testcontainer_redis` / False from `docker_answers`, never as an error.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from goldwire.cli.procutil import free_port
from goldwire.cli.redis_server import RedisServerError, redis_answers

DEFAULT_IMAGE = "redis:7-alpine"
_READY_TIMEOUT = 30.0


def docker_answers(timeout: float = 2.0) -> bool:
    """True if a Docker engine answers a ping within `timeout` seconds."""
    try:
        import docker
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=max(1, round(timeout)))
    except Exception:  # docker.errors.DockerException and transport errors alike
        return False
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


def _redis_container_class() -> Any:
    try:
        from testcontainers.community.redis import RedisContainer
    except ImportError:  # testcontainers < 4.10 kept it at the top level
        from testcontainers.redis import RedisContainer
    return RedisContainer


class DockerRedisServer:
    """A Redis container with the same surface as `RedisServer`.

    `start()` raises whatever docker/testcontainers raise; use
    `start_testcontainer_redis` or `redis_pick` for the never-raising path.
    """

    def __init__(self, *, image: str = DEFAULT_IMAGE, port: int | None = None) -> None:
        self._image = image
        self._port = port
        self._container: Any = None
        self._host = "127.0.0.1"

    @property
    def port(self) -> int:
        if self._port is None or self._container is None:
            raise RedisServerError("DockerRedisServer has not been started")
        return self._port

    @property
    def url(self) -> str:
        return f"redis://{self._host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return None

    def start(self) -> DockerRedisServer:
        if self._container is not None:
            return self
        port = self._port or free_port()
        container = (
            _redis_container_class()(self._image)
            .with_bind_ports(6379, port)
            .with_command("redis-server --save '' --appendonly no")
        )
        self._container, self._port = container, port
        try:
            container.start()  # waits for PING through the mapped port
            self._host = container.get_container_host_ip()
        except BaseException:
            self._container = None
            with contextlib.suppress(Exception):
                container.stop()  # the container may exist even though start failed
            raise
        return self

    def stop(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            container.stop()

    def kill(self) -> None:
        """SIGKILL the Redis process inside the container; the container stays."""
        wrapped = self._wrapped()
        wrapped.kill()
        wrapped.wait(timeout=_READY_TIMEOUT)

    def restart(self) -> None:
        """Start the container again on the same host port; data comes back empty."""
        self._wrapped().restart(timeout=5)
        deadline = time.monotonic() + _READY_TIMEOUT
        while not redis_answers(self.url, timeout=0.5):
            if time.monotonic() > deadline:
                raise RedisServerError(f"Redis container did not come back on {self.url}")
            time.sleep(0.1)

    def __enter__(self) -> DockerRedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wrapped(self) -> Any:
        if self._container is None:
            raise RedisServerError("DockerRedisServer has not been started")
        return self._container.get_wrapped_container()


def start_docker_redis(timeout: float = 2.0) -> DockerRedisServer | None:
    """Start a `DockerRedisServer` if Docker answers within `timeout`; else None."""
    if not docker_answers(timeout):
        return None
    server = DockerRedisServer()
    try:
        server.start()
    except Exception:  # DockerException, image pull failures, wait timeouts
        return None
    if not redis_answers(server.url, timeout=2.0):
        server.stop()
        return None
    return server


def start_testcontainer_redis(timeout: float = 2.0) -> tuple[str, Callable[[], None]] | None:
    """Start Redis with testcontainers; return `(url, stop)` or None without Docker."""
    server = start_docker_redis(timeout)
    if server is None:
        return None
    return server.url, server.stop
