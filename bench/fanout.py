"""Fan-out benchmark: one gateway process, many WebSocket clients in one room.

    .venv/bin/python bench/fanout.py                     # 1,000 clients, 20 msg/s, 10 s
    .venv/bin/python bench/fanout.py --rates 5,10,20,40  # stepped rates
    .venv/bin/python bench/fanout.py --smoke             # tiny, under a minute

What it does, all on loopback, with a private Redis (`RedisServer`):

1. Fan-out. `--clients` sockets connect to a fresh gateway (`python -m goldwire.cli
   gateway`) with a `connect` that joins one room. A publisher sends
   `document_update`s at a fixed rate through the gateway's own publish path (the
   room_publish.lua script on Redis, as `GatewayNode.publish_room` does; `--publish-via
   http` uses `POST /v1/publish` instead). Each message's `data` carries
   `"b": "<step> <seq> <time_ns at publish>"`; the clients measure latency against the
   wall clock and check loss, duplicates and order per socket.
2. Ceiling. The same clients against `bench/ceiling_server.py`, a bare `websockets`
   `serve` + `broadcast` server (no Redis, no protocol), fed the same-sized frames at
   the same rates over a control socket.
3. The peer (only with `--systems ...,socketio`). The same clients, speaking Engine.IO /
   Socket.IO over raw WebSockets, against `bench/sio_server.py`: python-socketio's
   `AsyncServer` with an `AsyncRedisManager` under uvicorn, published to by a
   write-only `AsyncRedisManager` (`SioPublisher`), as its users publish from a backend.
   `--systems ...,node` adds Node's peer: the same clients and the same Socket.IO
   protocol against `bench/node/server.js`, Socket.IO 4.8 with `@socket.io/redis-adapter`
   on ioredis, published to the way `@socket.io/redis-emitter` publishes (one msgpack
   packet per PUBLISH on the adapter's room channel, `NodeEmitterPublisher`). Its
   packages are installed with `npm ci` in bench/node when node_modules is missing.
4. ASGI (only with `--systems ...,asgi`). The same clients against
   `bench/asgi_server.py`: the same broadcast over the same control socket, served the
   ordinary ASGI way (a FastAPI WebSocket endpoint under uvicorn, one
   `await ws.send_text(...)` per socket per message; `--asgi-send`, `--asgi-ws`).
5. Idle memory. `--idle-connections` authenticated idle sockets (each joined to one
   room) on a fresh server of each system; RSS before and after.

`--systems` picks which of goldwire, socketio, node, ceiling and asgi run (default
goldwire,ceiling). Goldwire runs as deployed: the gateway plus every service process
`goldwire up` would start (`goldwire.cli.services.available_kinds`), all on the
server CPU, their CPU counted as the server's. `bench/run_all.py` runs every scenario
of the benchmark suite with these parts.

The clients (`bench/_clients.py`) run in their own processes. With two or more CPUs
the server under test is pinned to the first CPU and the clients, the publisher and
Redis to the others (`--no-pin` turns this off). Server, Redis and client CPU come
from /proc/<pid>/stat. Every result is one JSON line on stdout (`"kind"`: `fanout`,
`ratio`, `idle`, `target`); a table follows. Progress goes to stderr.

`--redis cluster` runs Goldwire on a private 3-master, 3-replica Redis Cluster
(`goldwire.cli.redis_cluster.LocalCluster`) instead of one Redis, with a plain Redis for
the services' arq jobs (JOBS_REDIS_URL); Redis CPU is then every node's and the jobs
Redis's (replicas included: they are part of what the deployment runs); socketio is
and node are refused there (their Redis managers and adapters here speak to one Redis).

Every process it starts is stopped at the end, also on Ctrl-C, SIGTERM or an error.
Linux only (/proc, sched_setaffinity).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import report

from goldwire.cli.procutil import free_port, parent_death_signal
from goldwire.cli.redis_cluster import LocalCluster
from goldwire.cli.redis_server import RedisServer
from goldwire.cli.tokens import mint_token
from goldwire.protocol.frames import room_frame_parts
from goldwire.protocol.keys import Keys
from goldwire.protocol.messages import encode
from goldwire.store.partitions import event_streams
from goldwire.store.rooms import RoomStore

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent

ROOM = "bench:1"
IDLE_ROOM = "bench:idle"
IDLE_ROOM_SIZE = 10  # idle connections per room
STORM_ROOM = "bench:storm"  # the connect storm's room, presence on
QUIET_ROOM = "bench:storm-quiet"  # the same with presence off (ROOM_OPTIONS)
TENANT = "default"  # tokens without a tenant claim
MSG_TYPE = "document_update"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PORTS_PER_SOURCE = 20_000  # ephemeral ports per source address we allow ourselves
DRAIN_IDLE_SECONDS = 2.0  # a step ends when no message arrived for this long ...
DRAIN_MAX_SECONDS = 15.0  # ... or after this long past the last publish

TARGET_P99_MS = report.TARGET_P99_MS

SYSTEMS = ("goldwire", "socketio", "node", "ceiling", "asgi")
NODE_DIR = BENCH_DIR / "node"  # the Node peer: server.js, its package.json and lockfile
WS_PATH = "/ws"
SIO_PATH = "/socket.io/?EIO=4&transport=websocket"


def log(msg: str) -> None:
    print(f"[fanout {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


_result_files: list[IO[str]] = []


def emit(obj: dict[str, Any]) -> None:
    """One result as one JSON line on stdout (and in every file `keep_results_in` gave)."""
    line = json.dumps(obj, separators=(",", ":"))
    print(line, flush=True)
    for fh in _result_files:
        fh.write(line + "\n")
        fh.flush()


def keep_results_in(fh: IO[str]) -> None:
    _result_files.append(fh)


# --- /proc ---------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        fields = fh.read().rpartition(b")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cores_busy(cpus: set[int] | None) -> tuple[float, float]:
    """(busy, total) jiffies of `cpus` so far, from /proc/stat (busy: not idle or iowait;
    it includes softirq time, where loopback TCP spends much of a sender's cost)."""
    busy = total = 0.0
    if not cpus:
        return busy, total
    with open("/proc/stat", "rb") as fh:
        for line in fh:
            if not line.startswith(b"cpu") or line.startswith(b"cpu "):
                continue
            name, *vals = line.split()
            if int(name[3:]) in cpus:
                nums = [int(v) for v in vals[:8]]
                total += sum(nums)
                busy += sum(nums) - nums[3] - nums[4]
    return busy, total


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", "rb") as fh:
        for line in fh:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def pin_all_threads(pid: int, cpus: set[int] | None) -> None:
    if not cpus:
        return
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(tid), cpus)


def raise_nofile() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def child_setup(cpus: set[int] | None) -> Callable[[], None]:
    """preexec_fn: pin to `cpus` (every later thread inherits it), raise the fd limit,
    and die with us if we die without cleaning up."""
    die = parent_death_signal(signal.SIGTERM)

    def setup() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)
        raise_nofile()
        if die is not None:
            die()

    return setup


# --- child processes ------------------------------------------------------------------------
class Children:
    """Every process this run started; `stop_all` leaves none behind."""

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(self, name: str, argv: list[str], cpus: set[int] | None,
              env: dict[str, str] | None = None, pipes: bool = False) -> subprocess.Popen[bytes]:
        log_path = os.path.join(self.log_dir, f"{name}.log")
        log_file = open(log_path, "ab")  # the child gets its own copy
        try:
            proc = subprocess.Popen(
                argv, cwd=REPO, env=env,
                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipes else log_file,
                stderr=log_file,
                start_new_session=True,  # Ctrl-C reaches us only; we stop them in order
                preexec_fn=child_setup(cpus),
            )
        finally:
            log_file.close()
        proc.log_path = log_path  # type: ignore[attr-defined]
        self.procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self.procs = [(n, p) for n, p in self.procs if p is not proc]

    def stop_all(self) -> None:
        for _, proc in list(reversed(self.procs)):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, proc in list(self.procs):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        self.procs = []


def log_tail(proc: subprocess.Popen[bytes], limit: int = 3000) -> str:
    try:
        with open(proc.log_path, "rb") as fh:  # type: ignore[attr-defined]
            return fh.read()[-limit:].decode(errors="replace")
    except OSError:
        return ""


class WorkerProc:
    """One `_clients.py` process, driven by JSON lines."""

    def __init__(self, proc: subprocess.Popen[bytes], reader: asyncio.StreamReader) -> None:
        self.proc = proc
        self.reader = reader

    @classmethod
    async def start(cls, children: Children, index: int, cpus: set[int] | None) -> WorkerProc:
        proc = children.spawn(f"clients-{index}", [sys.executable, str(BENCH_DIR / "_clients.py")],
                              cpus, pipes=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 28)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), proc.stdout)
        return cls(proc, reader)

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def call(self, cmd: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.stdin.flush()
        try:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
        except TimeoutError:
            raise RuntimeError(
                f"client worker did not answer {cmd['cmd']!r} in {timeout}s") from None
        if not line:
            raise RuntimeError(f"client worker exited:\n{log_tail(self.proc)}")
        out = json.loads(line)
        if "error" in out:
            raise RuntimeError(f"client worker: {out['error']}")
        return out


class Pool:
    """All client workers: the same command to each, sockets split between them."""

    def __init__(self, workers: list[WorkerProc]) -> None:
        self.workers = workers

    async def all(self, cmd: dict[str, Any], timeout: float = 60.0) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(w.call(cmd, timeout) for w in self.workers)))

    async def connect(self, host: str, port: int, frames: list[str], concurrency: int,
                      sources: list[str], timeout: float, path: str = WS_PATH,
                      proto: str = "goldwire") -> dict[str, Any]:
        n = len(self.workers)
        outs = await asyncio.gather(*(
            w.call({"cmd": "connect", "host": host, "port": port, "path": path,
                    "proto": proto, "frames": frames[i::n], "src": sources,
                    "concurrency": concurrency, "timeout": timeout}, timeout=timeout * 4 + 60)
            for i, w in enumerate(self.workers)
        ))
        errors: dict[str, int] = {}
        for out in outs:
            for k, v in out["errors"].items():
                errors[k] = errors.get(k, 0) + v
        return {"connected": sum(o["connected"] for o in outs),
                "failed": sum(o["failed"] for o in outs), "errors": errors,
                "seconds": max(o["seconds"] for o in outs)}

    def cpu(self) -> float:
        return sum(cpu_seconds(w.pid) for w in self.workers)

    async def quiet(self, still: float = 1.0, limit: float = 90.0) -> dict[str, Any]:
        """Wait until no frame arrived for `still` seconds (Goldwire's presence sends each
        joiner the room's state and every member a diff per join, for a while after the
        joins were answered). Returns the frames that came and the seconds it took."""
        started = time.monotonic()
        first = last = sum(o["other"] for o in await self.all({"cmd": "count"}))
        last_move = started
        while time.monotonic() - started < limit:
            await asyncio.sleep(0.25)
            now = sum(o["other"] for o in await self.all({"cmd": "count"}))
            if now != last:
                last, last_move = now, time.monotonic()
            elif time.monotonic() - last_move >= still:
                break
        return {"frames": last - first,
                "seconds": round(max(0.0, last_move - started), 2)}


# --- servers under test -------------------------------------------------------------------
async def wait_port(host: str, port: int, proc: subprocess.Popen[bytes], what: str,
                    timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log_tail(proc)}")
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s:\n{log_tail(proc)}")


def service_env(cfg: Config, prefix: str, port: int) -> dict[str, str]:
    """The environment of every Goldwire process of one deployment (gateway and services)."""
    env = dict(os.environ)
    env.update({
        "REDIS_URL": cfg.redis_url,
        "GOLDWIRE_KEY_PREFIX": prefix,
        "JWT_SECRET": cfg.secret,
        "API_KEYS": cfg.api_key,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "LOG_LEVEL": "warning",
        "WEBSOCKET_HEARTBEAT_INTERVAL": str(cfg.heartbeat),
        "DRAIN_TIMEOUT": "3",
        # the connect storm's presence-off room: a room option, as a deployment would set
        # it for a webinar lobby (goldwire.protocol.room_options)
        "ROOM_OPTIONS": json.dumps([{"pattern": QUIET_ROOM + "*", "presence": False}]),
    })
    if cfg.jobs_redis_url:
        env["JOBS_REDIS_URL"] = cfg.jobs_redis_url
    return env


@dataclass
class Gateway:
    """Goldwire as deployed: one gateway process plus every service process `goldwire up`
    would start (each service on its own free port), all on the server CPUs."""

    proc: subprocess.Popen[bytes]
    port: int
    prefix: str
    services: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    proto = "goldwire"
    path = WS_PATH

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def pids(self) -> list[int]:
        """Every server process whose CPU counts (the gateway first)."""
        return [self.proc.pid] + [p.pid for p in self.services.values() if p.poll() is None]

    def running_services(self) -> list[str]:
        return sorted(name for name, p in self.services.items() if p.poll() is None)

    @classmethod
    async def start(cls, children: Children, cfg: Config, name: str) -> Gateway:
        from goldwire.cli.services import available_kinds

        port = free_port()
        prefix = f"bench-{secrets.token_hex(3)}"
        env = service_env(cfg, prefix, port)
        kinds = [k for k in available_kinds() if k.name != "gateway"] if cfg.services else []
        for kind in kinds:  # each service's HTTP port, if it has one, must not collide
            env[f"{kind.name.upper()}_HOST"] = "127.0.0.1"
            env[f"{kind.name.upper()}_PORT"] = str(free_port())
        proc = children.spawn(name, [sys.executable, "-m", "goldwire.cli", "gateway"],
                              cfg.server_cpus, env=env)
        gw = cls(proc, port, prefix)
        for kind in kinds:
            gw.services[kind.name] = children.spawn(f"{name}-{kind.name}",
                                                    kind.argv(sys.executable),
                                                    cfg.server_cpus, env=env)
        await gw._wait_ready()
        if gw.services:
            await asyncio.sleep(0.3)
        for kind_name, svc in list(gw.services.items()):
            if svc.poll() is not None:  # a service in the making may not run yet: say so
                log(f"warning: service {kind_name} exited with {svc.returncode}; Goldwire runs "
                    f"without it:\n{log_tail(svc, 800)}")
                del gw.services[kind_name]
        return gw

    def stop(self, children: Children) -> None:
        children.stop(self.proc)
        for svc in self.services.values():
            children.stop(svc)

    async def _wait_ready(self, timeout: float = 30.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n"
                                       f"{log_tail(self.proc)}")
                try:
                    r = await http.get(f"http://127.0.0.1:{self.port}/readyz")
                    if r.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"gateway not ready within {timeout}s:\n{log_tail(self.proc)}")


@dataclass
class Ceiling:
    """A reference server fed over a control socket (bench/ceiling_server.py)."""

    proc: subprocess.Popen[bytes]
    port: int
    control_port: int

    script = "ceiling_server.py"
    what = "ceiling server"
    proto = "goldwire"
    path = WS_PATH

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def pids(self) -> list[int]:
        return [self.proc.pid]

    def stop(self, children: Children) -> None:
        children.stop(self.proc)

    @classmethod
    def extra_args(cls, cfg: Config) -> list[str]:
        return []

    @classmethod
    async def start(cls, children: Children, cfg: Config, name: str) -> Ceiling:
        port, control = free_port(), free_port()
        argv = [sys.executable, str(BENCH_DIR / cls.script), "--port", str(port),
                "--control-port", str(control), "--ping-interval", str(cfg.heartbeat),
                *cls.extra_args(cfg)]
        proc = children.spawn(name, argv, cfg.server_cpus)
        await wait_port("127.0.0.1", control, proc, cls.what)
        await wait_port("127.0.0.1", port, proc, cls.what)
        return cls(proc, port, control)


class Asgi(Ceiling):
    """The same broadcast served through ASGI: FastAPI under uvicorn (bench/asgi_server.py)."""

    script = "asgi_server.py"
    what = "asgi server"

    @classmethod
    def extra_args(cls, cfg: Config) -> list[str]:
        return ["--send", cfg.asgi_send, "--ws", cfg.asgi_ws]


@dataclass
class SioPeer:
    """A Socket.IO peer server: one process speaking Engine.IO/Socket.IO to the clients."""

    proc: subprocess.Popen[bytes]
    port: int

    proto = "sio"
    path = SIO_PATH

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def pids(self) -> list[int]:
        return [self.proc.pid]

    def stop(self, children: Children) -> None:
        children.stop(self.proc)


@dataclass
class SocketIO(SioPeer):
    """The peer: python-socketio AsyncServer + AsyncRedisManager under uvicorn
    (bench/sio_server.py), one process, as many as Goldwire has gateways."""

    channel: str

    @classmethod
    async def start(cls, children: Children, cfg: Config, name: str) -> SocketIO:
        port = free_port()
        channel = f"bench-sio-{secrets.token_hex(3)}"
        argv = [sys.executable, str(BENCH_DIR / "sio_server.py"), "--port", str(port),
                "--redis-url", cfg.redis_url, "--channel", channel,
                f"--jwt-secret={cfg.secret}", "--ping-interval", str(cfg.heartbeat)]
        proc = children.spawn(name, argv, cfg.server_cpus)
        await wait_port("127.0.0.1", port, proc, "socketio server")
        return cls(proc, port, channel)


def ensure_node_peer() -> None:
    """Install bench/node's pinned packages (`npm ci`) when node_modules is missing or
    older than the lockfile, so a fresh machine (CI) runs the Node peer as it is locked.
    Raises RuntimeError naming what is missing when node or npm is not on the PATH."""
    import shutil

    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(
            f"the node system needs {' and '.join(missing)} on the PATH (Node 18 or newer; "
            "on Debian: apt-get install nodejs npm), or leave node out of --systems")
    lock = NODE_DIR / "package-lock.json"
    installed = NODE_DIR / "node_modules" / ".package-lock.json"  # npm writes it last
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    log(f"node: npm ci in {NODE_DIR.relative_to(REPO)} (its packages are not installed yet)")
    out = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                         stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"npm ci in {NODE_DIR} failed ({out.returncode}):\n"
                           f"{(out.stdout + out.stderr)[-3000:]}")


@dataclass
class NodeSocketIO(SioPeer):
    """Node's peer: Socket.IO 4.8 with @socket.io/redis-adapter on ioredis
    (bench/node/server.js), one process, as many as Goldwire has gateways. `key` is the
    adapter's channel prefix, unique per server so runs never hear each other."""

    key: str

    @property
    def channel(self) -> str:
        """A channel the adapter SUBSCRIBEs to right after its PSUBSCRIBE to the room
        channels (`<key>#/#*`), on the same connection: once Redis counts a subscriber
        here, the pattern is in place too (PUBSUB NUMSUB does not count patterns)."""
        return f"{self.key}-request#/#"

    @classmethod
    async def start(cls, children: Children, cfg: Config, name: str) -> NodeSocketIO:
        ensure_node_peer()
        port = free_port()
        key = f"bench-node-{secrets.token_hex(3)}"
        argv = ["node", str(NODE_DIR / "server.js"), "--port", str(port),
                "--redis-url", cfg.redis_url, "--key", key,
                f"--jwt-secret={cfg.secret}", "--ping-interval", str(cfg.heartbeat)]
        proc = children.spawn(name, argv, cfg.server_cpus)
        await wait_port("127.0.0.1", port, proc, "node socket.io server")
        return cls(proc, port, key)


Server = Gateway | Ceiling | SocketIO | NodeSocketIO


async def wait_subscribed(redis_url: str, channel: str, proc: subprocess.Popen[bytes],
                          timeout: float = 30.0) -> None:
    """Until a server listens on `channel` (python-socketio subscribes after its first
    connection, in the background: a publish before that is lost)."""
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log_tail(proc)}")
            (_, subscribers), = await redis.pubsub_numsub(channel)
            if subscribers:
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"no server subscribed to {channel} within {timeout}s")
    finally:
        await redis.aclose()


async def start_server(system: str, cfg: Config, children: Children, what: str) -> Server:
    if system == "goldwire":
        return await Gateway.start(children, cfg, f"gateway-{what}")
    if system == "socketio":
        return await SocketIO.start(children, cfg, f"socketio-{what}")
    if system == "node":
        return await NodeSocketIO.start(children, cfg, f"node-{what}")
    if system == "asgi":
        return await Asgi.start(children, cfg, f"asgi-{what}")
    return await Ceiling.start(children, cfg, f"ceiling-{what}")


# --- publishers ---------------------------------------------------------------------------
class Publisher:
    """Publishes one benchmark message to one room; `seq` is the room's own sequence."""

    async def open(self) -> None: ...

    async def publish(self, room: str, data: dict[str, Any], seq: int) -> None:
        raise NotImplementedError

    async def close(self) -> None: ...


class ClientPublisher(Publisher):
    """How a backend publishes to Goldwire: `goldwire.client.RedisPublisher` (the
    room_publish.lua script with an idempotency key, and a `publish` event for the activity
    service), exactly as `POST /v1/publish` would, without the HTTP hop."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        from goldwire.client import RedisPublisher

        self.pub = RedisPublisher(redis_url, key_prefix=prefix)

    async def publish(self, room: str, data: dict[str, Any], seq: int) -> None:
        from goldwire.protocol.http import PublishRequest

        await self.pub.publish(PublishRequest(room=room, type=MSG_TYPE, data=data))

    async def close(self) -> None:
        await self.pub.aclose()


class RedisRoomPublisher(Publisher):
    """The gateway's own publish path, straight to Redis (GatewayNode.publish_room), with no
    idempotency key and no event: the least a publish can cost."""

    def __init__(self, redis_url: str, prefix: str, cluster: bool = False) -> None:
        self.redis = data_client(redis_url, cluster)
        # the gateway's defaults: history_size 1000, history_ttl 86400 s, 300 s window
        self.rooms = RoomStore(self.redis, Keys(prefix), 1000, 86_400, 300)

    async def publish(self, room: str, data: dict[str, Any], seq: int) -> None:
        head, tail = room_frame_parts(MSG_TYPE, room, data)
        await self.rooms.publish(TENANT, room, head, tail, None)

    async def close(self) -> None:
        await self.redis.aclose()


class HttpPublisher(Publisher):
    """`POST /v1/publish` with an API key, as a backend service would."""

    def __init__(self, port: int, api_key: str) -> None:
        import httpx

        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10.0,
                                      headers={"Authorization": f"Bearer {api_key}"})

    async def publish(self, room: str, data: dict[str, Any], seq: int) -> None:
        r = await self.http.post("/v1/publish",
                                 json={"room": room, "type": MSG_TYPE, "data": data})
        if r.status_code != 200:
            raise RuntimeError(f"publish answered {r.status_code}: {r.text[:300]}")

    async def close(self) -> None:
        await self.http.aclose()


class SioPublisher(Publisher):
    """How python-socketio's users publish from a backend: a write-only
    `AsyncRedisManager.emit(..., room=...)` on the server's channel. The event carries
    the same fields as Goldwire's frame (room, offset, ts, data)."""

    def __init__(self, redis_url: str, channel: str) -> None:
        import socketio

        self.mgr = socketio.AsyncRedisManager(redis_url, channel=channel, write_only=True)

    async def publish(self, room: str, data: dict[str, Any], seq: int) -> None:
        ms = int(time.time() * 1000)
        await self.mgr.emit(MSG_TYPE, {"room": room, "offset": f"{ms}-{seq}", "ts": ms,
                                       "data": data}, room=room, namespace="/")

    async def close(self) -> None:
        redis = getattr(self.mgr, "redis", None)
        if redis is not None:
            with contextlib.suppress(Exception):
                await redis.aclose()


class NodeEmitterPublisher(Publisher):
    """How Node Socket.IO's users publish from a backend: @socket.io/redis-emitter's
    `emitter.to(room).emit(...)`, its wire format written here in Python so the harness
    publishes to both peers from the same process with the same redis-py client (a Node
    publisher would add a pipe hop inside the measured latency). That emit is one
    PUBLISH on `<key>#/#<room>#` of msgpack `["emitter", packet, opts]`, packet
    `{"type": 2 (EVENT), "data": [event, payload], "nsp": "/"}`, opts
    `{"rooms": [room], "flags": {}, "except": []}` (redis-emitter 5.1 `BroadcastOperator.emit`;
    the adapter's `onmessage` decodes it and broadcasts to the room). The event carries
    the same fields as SioPublisher's."""

    EMITTER_UID = "emitter"  # redis-emitter's fixed uid; the adapter skips only its own
    EVENT = 2  # socket.io-parser PacketType.EVENT

    def __init__(self, redis_url: str, key: str) -> None:
        import msgpack
        from redis.asyncio import Redis

        self.packb = msgpack.packb
        self.redis = Redis.from_url(redis_url)
        self.key = key

    async def publish(self, room: str, data: dict[str, Any], seq: int) -> None:
        ms = int(time.time() * 1000)
        packet = {"type": self.EVENT,
                  "data": [MSG_TYPE, {"room": room, "offset": f"{ms}-{seq}", "ts": ms,
                                      "data": data}],
                  "nsp": "/"}
        opts = {"rooms": [room], "flags": {}, "except": []}
        await self.redis.publish(f"{self.key}#/#{room}#",
                                 self.packb([self.EMITTER_UID, packet, opts]))

    async def close(self) -> None:
        await self.redis.aclose()


class CeilingPublisher(Publisher):
    """Frames shaped like the gateway's, one line each on the ceiling's control socket
    (`@<room>\\t<frame>`: to that room's sockets)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        _, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def publish(self, room: str, data: dict[str, Any], seq: int) -> None:
        assert self.writer is not None
        ms = int(time.time() * 1000)
        frame = encode({"type": MSG_TYPE, "room": room, "offset": f"{ms}-{seq}",
                        "ts": ms, "data": data})
        self.writer.write(b"@" + room.encode() + b"\t" + frame + b"\n")
        await self.writer.drain()

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()


def publisher_for(server: Server, cfg: Config) -> Publisher:
    if isinstance(server, Gateway):
        if cfg.publish_via == "http":
            return HttpPublisher(server.port, cfg.api_key)
        if cfg.publish_via == "redis":
            return RedisRoomPublisher(cfg.redis_url, server.prefix, cfg.redis == "cluster")
        return ClientPublisher(cfg.redis_url, server.prefix)
    if isinstance(server, SocketIO):
        return SioPublisher(cfg.redis_url, server.channel)
    if isinstance(server, NodeSocketIO):
        return NodeEmitterPublisher(cfg.redis_url, server.key)
    return CeilingPublisher(server.control_port)


# --- configuration ---------------------------------------------------------------------------
@dataclass
class Config:
    clients: int
    rates: list[float]
    duration: float
    idle_connections: int
    skip_ceiling: bool
    publish_via: str
    payload_bytes: int
    heartbeat: float
    concurrency: int
    connect_timeout: float
    client_procs: int
    src_addrs: int
    server_cpus: set[int] | None
    client_cpus: set[int] | None
    systems: list[str] = field(default_factory=lambda: ["goldwire", "ceiling"])
    asgi_send: str = "loop"
    asgi_ws: str = "auto"
    redis: str = "single"  # or "cluster": LocalCluster plus a plain jobs Redis
    redis_url: str = ""
    jobs_redis_url: str = ""  # JOBS_REDIS_URL of every Goldwire process, when set
    secret: str = field(default_factory=lambda: "bench-" + secrets.token_urlsafe(32))
    api_key: str = field(default_factory=lambda: "bench-" + secrets.token_urlsafe(16))
    smoke: bool = False
    services: bool = True  # start Goldwire's services beside the gateway
    max_misses: int = 0  # stop a system's rate steps after this many unsustained ones (0: never)
    settle: float = 1.0  # seconds between connecting and the first step


def sources_for(n_conns: int, forced: int) -> list[str]:
    """Loopback source addresses so no one address runs out of ephemeral ports."""
    count = forced or math.ceil(n_conns / PORTS_PER_SOURCE)
    if count <= 1:
        return []
    return [f"127.0.0.{i + 1}" for i in range(min(count, 254))]


def connect_frames(cfg: Config, users: Sequence[str], room: str | Sequence[str],
                   proto: str = "goldwire") -> list[str]:
    """Each user's first frame: Goldwire's `connect` joining its room, or for Socket.IO the
    `CONNECT` packet with the token and room as its auth payload. `room` may be a list,
    taken round-robin (user i joins room i % len)."""
    rooms = [room] if isinstance(room, str) else list(room)
    frames = []
    for i, user in enumerate(users):
        token = mint_token(cfg.secret, user, rooms=["*"], publish=["*"], ttl=3600)
        r = rooms[i % len(rooms)]
        if proto == "sio":
            frames.append("40" + json.dumps({"token": token, "room": r}, separators=(",", ":")))
        else:
            frames.append(json.dumps({"op": "connect", "token": token, "ref": 1,
                                      "rooms": [{"room": r}]}, separators=(",", ":")))
    return frames


# --- the fan-out steps ----------------------------------------------------------------------
def percentile(sorted_values: Sequence[int], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, math.ceil(p * len(sorted_values)) - 1))
    return float(sorted_values[k])


def sustained(r: dict[str, Any]) -> bool:
    """A step the system kept up with: p99 under the target, nothing lost, duplicated,
    reordered or cut off, and (nearly) the offered rate delivered."""
    return (r["lost"] == 0 and r["duplicated"] == 0 and r["out_of_order"] == 0
            and r["unexpected_closes"] == 0 and r["p99_ms"] < TARGET_P99_MS
            and r["deliveries_per_s"] >= 0.9 * r["offered_per_s"])


async def publish_at_rate(pub: Publisher, rate: float, count: int, step: int, pad: str,
                          rooms: Sequence[str] = (ROOM,),
                          inflight: int = 1) -> tuple[int, int, float]:
    """Publish `count` messages at `rate`/s on an absolute schedule, message i to room
    i % len(rooms) with that room's sequence number i // len(rooms).

    With `inflight` > 1 up to that many publishes are in flight at once, but a room's
    next publish starts only after its previous one ended, so each room stays in order.
    Returns (first publish time_ns, last publish time_ns, worst lateness in s)."""
    loop = asyncio.get_running_loop()
    interval = 1.0 / rate
    start = loop.time() + 0.05
    worst = 0.0
    first_ns = last_ns = 0
    nrooms = len(rooms)
    sem = asyncio.Semaphore(max(1, inflight))
    last_of_room: dict[str, asyncio.Task[None]] = {}

    async def chained(prev: asyncio.Task[None] | None, room: str, data: dict[str, Any],
                      seq: int) -> None:
        try:
            if prev is not None:
                await prev
            await pub.publish(room, data, seq)
        finally:
            sem.release()

    for i in range(count):
        due = start + i * interval
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if inflight > 1:
            await sem.acquire()
        late = loop.time() - due
        if late > worst:
            worst = late
        now_ns = time.time_ns()
        if not first_ns:
            first_ns = now_ns
        last_ns = now_ns
        room, seq = rooms[i % nrooms], i // nrooms
        data = {"b": f"{step} {seq} {now_ns}", "pad": pad}
        if inflight > 1:
            last_of_room[room] = asyncio.create_task(
                chained(last_of_room.get(room), room, data, seq))
        else:
            await pub.publish(room, data, seq)
    if last_of_room:
        await asyncio.gather(*last_of_room.values())
    return first_ns, last_ns, worst


def total_cpu(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


async def run_step(system: str, cfg: Config, pool: Pool, connected: int, pub: Publisher,
                   server_pids: Sequence[int], redis_pids: Sequence[int], rate: float,
                   step: int, rooms: Sequence[str] = (ROOM,), inflight: int = 1,
                   kind: str = "fanout") -> dict[str, Any]:
    """One rate step: `rate` messages/s in all, spread over `rooms` (each client in one)."""
    nrooms = len(rooms)
    count = max(1, round(rate * cfg.duration / nrooms)) * nrooms
    per_client = count // nrooms
    expected_total = per_client * connected
    await pool.all({"cmd": "step", "step": step})
    pad = "x" * cfg.payload_bytes
    t0 = time.perf_counter()
    srv0 = total_cpu(server_pids)
    gw0 = total_cpu(server_pids[:1])
    redis0 = total_cpu(redis_pids)
    cli0 = pool.cpu()
    me0 = cpu_seconds(os.getpid())
    core0 = cores_busy(cfg.server_cpus)
    first_pub, last_pub, late = await publish_at_rate(pub, rate, count, step, pad, rooms,
                                                      inflight)
    # drain: until everything arrived or nothing moved for a while
    deadline = time.monotonic() + DRAIN_MAX_SECONDS
    last_total, last_move = -1, time.monotonic()
    while time.monotonic() < deadline:
        total = sum(o["received"] for o in await pool.all({"cmd": "count"}))
        if total >= expected_total:
            break
        if total != last_total:
            last_total, last_move = total, time.monotonic()
        elif time.monotonic() - last_move > DRAIN_IDLE_SECONDS:
            break
        await asyncio.sleep(0.05)
    window = time.perf_counter() - t0
    srv_cpu = total_cpu(server_pids) - srv0
    gw_cpu = total_cpu(server_pids[:1]) - gw0
    redis_cpu = total_cpu(redis_pids) - redis0
    cli_cpu = pool.cpu() - cli0
    me_cpu = cpu_seconds(os.getpid()) - me0
    core1 = cores_busy(cfg.server_cpus)
    core_busy = ((core1[0] - core0[0]) / (core1[1] - core0[1])
                 if core1[1] > core0[1] else None)
    reports = await pool.all({"cmd": "report", "expected": per_client}, timeout=120)

    lat = array("q")
    for rep in reports:
        lat.frombytes(base64.b64decode(rep["lat_us"]))
    values = sorted(lat)
    unique = sum(r["unique"] for r in reports)
    last_ns = max((r["last_ns"] for r in reports), default=0)
    span = max(count / rate, (last_ns - first_pub) / 1e9 if last_ns else 0.0)
    deliveries_per_s = unique / span if span > 0 else 0.0
    close_reasons: dict[str, int] = {}
    for rep in reports:
        for k, v in rep["close_reasons"].items():
            close_reasons[k] = close_reasons.get(k, 0) + v
    client_cores = len(cfg.client_cpus) if cfg.client_cpus else os.cpu_count() or 1
    client_pct = 100 * cli_cpu / (window * client_cores)
    notes = []
    if client_pct > 80:
        notes.append("client processes near their CPU limit: latency and deliveries/s may be "
                     "the harness's")
    if late > 0.005:
        notes.append(f"publisher fell {late * 1000:.0f} ms behind its schedule")
    res = {
        "kind": kind,
        "system": system,
        "rate": rate,
        "clients": connected,
        "rooms": nrooms,
        "published": count,
        "publish_seconds": round((last_pub - first_pub) / 1e9, 3),
        "publisher_worst_late_ms": round(late * 1000, 2),
        "offered_per_s": round(rate * connected / nrooms, 1),
        "expected": expected_total,
        "delivered": unique,
        "deliveries_per_s": round(deliveries_per_s, 1),
        "p50_ms": round(percentile(values, 0.50) / 1000, 3),
        "p99_ms": round(percentile(values, 0.99) / 1000, 3),
        "max_ms": round(percentile(values, 1.0) / 1000, 3),
        "lost": sum(r["lost"] for r in reports),
        "duplicated": sum(r["duplicated"] for r in reports),
        "out_of_order": sum(r["out_of_order"] for r in reports),
        "stale": sum(r["stale"] for r in reports),
        "open_at_end": sum(r["open"] for r in reports),
        "unexpected_closes": sum(r["unexpected_closes"] for r in reports),
        "close_reasons": close_reasons,
        "window_s": round(window, 3),
        "server_processes": len(server_pids),
        "server_cpu_s": round(srv_cpu, 3),
        "services_cpu_s": round(srv_cpu - gw_cpu, 3),
        "server_cpu_pct": round(100 * srv_cpu / window, 1),
        "server_core_busy_pct": round(100 * core_busy, 1) if core_busy is not None else None,
        "server_cpu_us_per_delivery": round(1e6 * srv_cpu / unique, 3) if unique else None,
        "deliveries_per_server_cpu_s": round(unique / srv_cpu) if srv_cpu > 0 else None,
        "redis_cpu_s": round(redis_cpu, 3),
        "server_plus_redis_us_per_delivery": (round(1e6 * (srv_cpu + redis_cpu) / unique, 3)
                                              if unique and redis_pids else None),
        "client_cpu_s": round(cli_cpu, 3),
        "client_cpu_pct_of_their_cores": round(client_pct, 1),
        "publisher_cpu_s": round(me_cpu, 3),
        "notes": notes,
    }
    res["sustained"] = sustained(res)
    return res


async def load_system(system: str, cfg: Config, children: Children, pool: Pool,
                      redis_pids: Sequence[int], step_base: int, *, clients: int,
                      rooms: Sequence[str], rates: Sequence[float], inflight: int = 1,
                      kind: str = "fanout") -> list[dict[str, Any]]:
    """A fresh server of `system`, `clients` sockets spread over `rooms`, then one step per
    rate (stopping after `cfg.max_misses` unsustained steps, or at the first step that
    fell far behind). One JSON line per step."""
    log(f"{system}: starting the server ({kind})")
    server = await start_server(system, cfg, children, kind)
    results: list[dict[str, Any]] = []
    pub: Publisher | None = None
    try:
        frames = connect_frames(cfg, [f"{kind}-{i}" for i in range(clients)], rooms,
                                server.proto)
        conn = await pool.connect("127.0.0.1", server.port, frames, cfg.concurrency,
                                  sources_for(clients, cfg.src_addrs), cfg.connect_timeout,
                                  server.path, server.proto)
        log(f"{system}: {conn['connected']}/{clients} clients in {len(rooms)} room(s) connected "
            f"in {conn['seconds']} s" + (f"; failures: {conn['errors']}" if conn["failed"] else ""))
        if conn["connected"] == 0:
            raise RuntimeError(f"{system}: no client could connect: {conn['errors']}")
        pub = publisher_for(server, cfg)
        await pub.open()
        if isinstance(server, SioPeer):
            await wait_subscribed(cfg.redis_url, server.channel, server.proc)
        await asyncio.sleep(cfg.settle)
        quiet = await pool.quiet(still=0.5 if cfg.smoke else 1.0)
        if quiet["frames"]:
            log(f"{system}: {quiet['frames']} frames (presence) after connecting, quiet after "
                f"{quiet['seconds']} s")  # let connect-time work (events, subscriptions) settle
        misses = 0
        uses_redis = system in ("goldwire", "socketio", "node")
        for i, rate in enumerate(rates):
            log(f"{system}: {conn['connected']} clients, {rate:g} msg/s over {len(rooms)} "
                f"room(s) for {cfg.duration:g} s")
            services = server.services if isinstance(server, Gateway) else {}
            svc0 = {name: total_cpu([p.pid]) for name, p in services.items()}
            res = await run_step(system, cfg, pool, conn["connected"], pub, server.pids,
                                 redis_pids if uses_redis else (), rate, step_base + i,
                                 rooms, inflight, kind)
            if services:
                res["services_cpu_s"] = round(sum(total_cpu([p.pid]) - svc0[name]
                                                  for name, p in services.items()), 3)
                res["cpu_s_by_service"] = {name: round(total_cpu([p.pid]) - svc0[name], 3)
                                           for name, p in services.items()}
            res["connect_seconds"] = conn["seconds"]
            res["connect_failures"] = conn["failed"]
            res["frames_after_connect"] = quiet["frames"]
            res["quiet_after_connect_s"] = quiet["seconds"]
            if isinstance(server, Gateway):
                res["services"] = server.running_services()
            emit(res)
            results.append(res)
            if server.proc.poll() is not None:
                raise RuntimeError(f"{system} server died:\n{log_tail(server.proc)}")
            if not res["sustained"]:
                misses += 1
                far_behind = (res["deliveries_per_s"] < 0.8 * res["offered_per_s"]
                              or res["unexpected_closes"] > 0)
                if cfg.max_misses and (misses >= cfg.max_misses or far_behind):
                    if i + 1 < len(rates):
                        log(f"{system}: not sustained; skipping the higher rates")
                    break
    finally:
        if pub is not None:
            await pub.close()
        with contextlib.suppress(Exception):
            await pool.all({"cmd": "close"}, timeout=30)
        server.stop(children)
    return results


async def fanout_system(system: str, cfg: Config, children: Children, pool: Pool,
                        redis_pids: Sequence[int], step_base: int) -> list[dict[str, Any]]:
    """`cfg.clients` sockets in one room, one step per rate in `cfg.rates`."""
    return await load_system(system, cfg, children, pool, redis_pids, step_base,
                             clients=cfg.clients, rooms=[ROOM], rates=cfg.rates)


# --- connect storm ------------------------------------------------------------------------------
async def storm_system(system: str, cfg: Config, children: Children, pool: Pool,
                       clients: int, presence: bool = True) -> dict[str, Any]:
    """`clients` sockets connecting at once into one room of a fresh server (everyone
    opening the same document after a deploy): the seconds until every join was
    answered, and until the room's presence traffic (each joiner the state, every
    member a diff) had stopped. One JSON line, kind `storm`; `presence: false` runs
    Goldwire's room with presence off by a room option (the peers have no presence)."""
    room = STORM_ROOM if presence else QUIET_ROOM
    label = system if presence else f"{system} (presence off)"
    log(f"{label}: connect storm, {clients} clients into one room on a fresh server")
    server = await start_server(system, cfg, children, "storm")
    try:
        frames = connect_frames(cfg, [f"storm-{i}" for i in range(clients)], room, server.proto)
        cpu0 = total_cpu(server.pids)
        conn = await pool.connect("127.0.0.1", server.port, frames, cfg.concurrency,
                                  sources_for(clients, cfg.src_addrs), cfg.connect_timeout,
                                  server.path, server.proto)
        quiet = await pool.quiet(still=0.5 if cfg.smoke else 1.0, limit=120.0)
        cpu = total_cpu(server.pids) - cpu0  # includes the quiet window's idle second
        fill = round(conn["seconds"] + quiet["seconds"], 2)
        res = {
            "kind": "storm", "system": system, "presence": presence, "clients": clients,
            "connected": conn["connected"], "failed": conn["failed"], "errors": conn["errors"],
            "joined_seconds": conn["seconds"], "settle_seconds": quiet["seconds"],
            "fill_seconds": fill, "frames_after_joins": quiet["frames"],
            "server_cpu_s": round(cpu, 3),
            "server_cpu_ms_per_connect": (round(1e3 * cpu / conn["connected"], 2)
                                          if conn["connected"] else None),
        }
        log(f"{label}: {conn['connected']}/{clients} joined in {conn['seconds']} s, "
            f"room quiet {quiet['seconds']} s later ({quiet['frames']} frames)"
            + (f"; failures: {conn['errors']}" if conn["failed"] else ""))
        emit(res)
        return res
    finally:
        with contextlib.suppress(Exception):
            await pool.all({"cmd": "close"}, timeout=60)
        server.stop(children)


# --- idle memory ---------------------------------------------------------------------------------
async def settled_rss(pid: int, settle: float, tick: float = 0.5) -> int:
    """RSS once it stops moving between two looks `tick` s apart (or after `settle` s)."""
    await asyncio.sleep(tick)
    prev = rss_kb(pid)
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        await asyncio.sleep(tick)
        cur = rss_kb(pid)
        if abs(cur - prev) < 64:
            return cur
        prev = cur
    return prev


SIZE_COMMANDS = {b"hash": "HLEN", b"zset": "ZCARD", b"set": "SCARD", b"list": "LLEN",
                 b"stream": "XLEN"}


async def keys_size(redis: Any, keys: Sequence[str]) -> int:
    """Members of keys of any type, summed (absent keys count 0): how much a service
    recorded, whatever structure it chose. Two pipelined round trips."""
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
    types = await pipe.execute()
    pipe = redis.pipeline(transaction=False)
    counted = 0
    for key, kind in zip(keys, types, strict=True):
        command = SIZE_COMMANDS.get(kind if isinstance(kind, bytes) else str(kind).encode())
        if command:
            pipe.execute_command(command, key)
            counted += 1
    return sum(int(x) for x in await pipe.execute()) if counted else 0


async def goldwire_records(cfg: Config, server: Gateway,
                           rooms: Sequence[str]) -> dict[str, int | None]:
    """What Goldwire has recorded in Redis: events written, and (with the presence service
    running) the connections its presence holds in `rooms`."""

    keys = Keys(server.prefix)
    redis = data_client(cfg.redis_url, cfg.redis == "cluster")
    try:
        partitions = (await event_streams(redis, keys, None)).all()
        events = sum([int(await redis.xlen(stream)) for stream in partitions])
        out: dict[str, int | None] = {"events": events, "presence": None}
        presence_key = getattr(keys, "presence_conns", None)
        if presence_key is not None and "presence" in server.services:
            out["presence"] = await keys_size(redis, [presence_key(TENANT, r) for r in rooms])
        return out
    finally:
        await redis.aclose()


async def idle_system(system: str, cfg: Config, children: Children, pool: Pool,
                      n: int | None = None, sources: list[str] | None = None,
                      kind: str = "idle") -> tuple[dict[str, Any], dict[str, Any]]:
    """`n` authenticated idle sockets on a fresh server, in rooms of `IDLE_ROOM_SIZE`: RSS
    per connection, and the connect rate of those `n` (a second JSON line, kind `connect`).

    Rooms of ten, not one room: with presence, a join sends the joiner the room's whole
    state and every member a diff, so filling one room of n costs O(n^2) frames; that
    is the fan-out scenario's connect time, not what an idle connection costs."""
    n = cfg.idle_connections if n is None else n
    warm = max(10, min(200, n // 10))
    rooms = [f"{IDLE_ROOM}-{i}" for i in range(math.ceil((n + warm) / IDLE_ROOM_SIZE))]
    shifted = rooms[warm % len(rooms):] + rooms[:warm % len(rooms)]
    log(f"{system}: idle memory, {warm} warm-up + {n} idle connections on a fresh server")
    server = await start_server(system, cfg, children, kind)
    short = 0.5 if cfg.smoke else 0.0  # smoke: settle for less
    tick = 0.25 if cfg.smoke else 0.5
    try:
        if sources is None:
            sources = sources_for(n + warm, cfg.src_addrs)
        rss_fresh = await settled_rss(server.pid, short or 3, tick)
        c1 = await pool.connect("127.0.0.1", server.port,
                                connect_frames(cfg, [f"warm-{i}" for i in range(warm)],
                                               rooms, server.proto),
                                cfg.concurrency, sources, cfg.connect_timeout,
                                server.path, server.proto)
        rss_base = await settled_rss(server.pid, short or 5, tick)
        before = (await goldwire_records(cfg, server, rooms)
                  if isinstance(server, Gateway) else None)
        frames = connect_frames(cfg, [f"idle-{i}" for i in range(n)], shifted, server.proto)
        srv0, gw0, cli0 = total_cpu(server.pids), cpu_seconds(server.pid), pool.cpu()
        c2 = await pool.connect("127.0.0.1", server.port, frames, cfg.concurrency, sources,
                                cfg.connect_timeout, server.path, server.proto)
        srv_cpu, cli_cpu = total_cpu(server.pids) - srv0, pool.cpu() - cli0
        main_cpu = cpu_seconds(server.pid) - gw0
        rss_after = await settled_rss(server.pid, short or 10, tick)
        recorded: dict[str, Any] = {}
        if before is not None and isinstance(server, Gateway):
            after = await goldwire_records(cfg, server, rooms)
            deadline = time.monotonic() + (2 if cfg.smoke else 10)
            while (after["presence"] is not None and after["presence"] < n + warm
                   and time.monotonic() < deadline):
                await asyncio.sleep(0.5)
                after = await goldwire_records(cfg, server, rooms)
            recorded = {"events_written": after["events"] - (before["events"] or 0),
                        "presence_connections": after["presence"],
                        "services": server.running_services()}
        errors = {**c1["errors"], **c2["errors"]}
        connected = c2["connected"]
        secs = c2["seconds"]
        res = {
            "kind": "idle",
            "system": system,
            "connections": connected,
            "room_size": IDLE_ROOM_SIZE,
            "warmup_connections": c1["connected"],
            "failed": c1["failed"] + c2["failed"],
            "errors": errors,
            "connect_seconds": secs,
            "connects_per_s": round(connected / secs, 1) if secs else None,
            "source_addresses": len(sources) or 1,
            "rss_fresh_kb": rss_fresh,
            "rss_before_kb": rss_base,
            "rss_after_kb": rss_after,
            "kb_per_connection": (round((rss_after - rss_base) / connected, 2)
                                  if connected else None),
        }
        log(f"{system}: {connected} idle connections in {secs} s, "
            f"RSS {rss_base} -> {rss_after} KB" + (f"; failures: {errors}" if errors else ""))
        emit(res)
        client_cores = len(cfg.client_cpus) if cfg.client_cpus else os.cpu_count() or 1
        rate = {
            "kind": "connect",
            "system": system,
            "connections": connected,
            "failed": c2["failed"],
            "seconds": secs,
            "connects_per_s": res["connects_per_s"],
            "in_flight": cfg.concurrency * len(pool.workers),
            "server_cpu_s": round(srv_cpu, 3),
            "server_cpu_us_per_connect": round(1e6 * srv_cpu / connected) if connected else None,
            "server_cpu_pct": round(100 * srv_cpu / secs, 1) if secs else None,
            "main_process_cpu_us_per_connect": (round(1e6 * main_cpu / connected)
                                                if connected else None),
            "main_process_cpu_pct": round(100 * main_cpu / secs, 1) if secs else None,
            "client_cpu_pct_of_their_cores": (round(100 * cli_cpu / (secs * client_cores), 1)
                                              if secs else None),
            **recorded,
        }
        emit(rate)
        return res, rate
    finally:
        with contextlib.suppress(Exception):
            await pool.all({"cmd": "close"}, timeout=60)
        server.stop(children)


# --- summary -----------------------------------------------------------------------------------
def verdict(ok: bool | None) -> str:
    return "N/A" if ok is None else ("PASS" if ok else "MISS")


def summarize(cfg: Config, fan: list[dict[str, Any]], idle: list[dict[str, Any]]) -> None:
    by = {(r["system"], r["rate"]): r for r in fan}
    ratios = []
    for baseline in ("socketio", "node", "ceiling", "asgi"):
        for rate in cfg.rates:
            gw, ce = by.get(("goldwire", rate)), by.get((baseline, rate))
            if not gw or not ce:
                continue
            cpu_ratio = None
            if gw["server_cpu_us_per_delivery"] and ce["server_cpu_us_per_delivery"]:
                cpu_ratio = round(gw["server_cpu_us_per_delivery"]
                                  / ce["server_cpu_us_per_delivery"], 3)
            ratio = {
                "kind": "ratio", "baseline": baseline, "rate": rate, "clients": gw["clients"],
                "deliveries_per_s_ratio": (
                    round(gw["deliveries_per_s"] / ce["deliveries_per_s"], 3)
                    if ce["deliveries_per_s"] else None),
                "cpu_per_delivery_ratio": cpu_ratio,
                "p99_ratio": round(gw["p99_ms"] / ce["p99_ms"], 3) if ce["p99_ms"] else None,
            }
            emit(ratio)
            ratios.append(ratio)

    # the targets, as bench/run_all.py judges them (on what this run measured)
    targets = report.targets({"fanout": fan, "idle": idle})
    for t in targets:
        emit({"kind": "target", **{k: v for k, v in t.items() if k != "ok"},
              "result": verdict(t["ok"])})

    # the human-readable table
    out = sys.stdout
    print("", file=out)
    print("Fan-out (one room; latency = client receive time - publisher time)", file=out)
    head = (f"{'system':<9}{'rate':>6}{'clients':>8}{'offered/s':>11}{'deliv/s':>11}"
            f"{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'lost':>7}{'dup':>5}{'ooo':>5}"
            f"{'srv cpu s':>10}{'srv %':>7}{'us/deliv':>9}{'+redis':>8}{'cli %':>7}")
    print(head, file=out)
    print("-" * len(head), file=out)
    for r in fan:
        plus = r["server_plus_redis_us_per_delivery"]
        print(f"{r['system']:<9}{r['rate']:>6g}{r['clients']:>8}{r['offered_per_s']:>11.0f}"
              f"{r['deliveries_per_s']:>11.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
              f"{r['max_ms']:>9.2f}{r['lost']:>7}{r['duplicated']:>5}{r['out_of_order']:>5}"
              f"{r['server_cpu_s']:>10.2f}{r['server_cpu_pct']:>7.1f}"
              f"{_num(r['server_cpu_us_per_delivery']):>9}"
              f"{_num(plus):>8}"
              f"{r['client_cpu_pct_of_their_cores']:>7.1f}", file=out)
    for r in fan:
        for note in r["notes"]:
            print(f"  note: {r['system']} at {r['rate']:g} msg/s: {note}", file=out)
    print("  srv % = server CPU / step window (one core = 100); us/deliv = server CPU µs per "
          "delivery; +redis = server + Redis; cli % = client processes' CPU / their cores",
          file=out)
    for ratio in ratios:
        print(f"Goldwire/{ratio['baseline']} at {ratio['rate']:g} msg/s: deliveries/s "
              f"{_num(ratio['deliveries_per_s_ratio'])}x, CPU per delivery "
              f"{_num(ratio['cpu_per_delivery_ratio'])}x, p99 {_num(ratio['p99_ratio'])}x",
              file=out)
    if idle:
        print("", file=out)
        print("Idle memory (RSS of the server process)", file=out)
        for r in idle:
            print(f"  {r['system']:<9}{r['connections']:>7} conns: {r['rss_before_kb'] / 1024:8.1f}"
                  f" MB -> {r['rss_after_kb'] / 1024:8.1f} MB = "
                  f"{_num(r['kb_per_connection'])} KB/connection "
                  f"(fresh {r['rss_fresh_kb'] / 1024:.1f} MB; {r['connects_per_s']} connects/s)",
                  file=out)
    print("", file=out)
    print("Targets", file=out)
    for t in targets:
        note = f"  ({t['note']})" if t["note"] else ""
        print(f"  {verdict(t['ok']):<5} {t['name']}: {_num(t['value'])} "
              f"(threshold {t['threshold']}){note}", file=out)


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"


# --- main --------------------------------------------------------------------------------
async def bench(cfg: Config, children: Children, redis_pids: Sequence[int]) -> int:
    pool = Pool([await WorkerProc.start(children, i, cfg.client_cpus)
                 for i in range(cfg.client_procs)])
    fan: list[dict[str, Any]] = []
    idle: list[dict[str, Any]] = []
    systems = cfg.systems
    try:
        for k, system in enumerate(systems):
            fan += await fanout_system(system, cfg, children, pool, redis_pids, 1000 * (k + 1))
        if cfg.idle_connections > 0:
            for system in systems:
                idle.append((await idle_system(system, cfg, children, pool))[0])
        summarize(cfg, fan, idle)
    finally:
        for w in pool.workers:
            with contextlib.suppress(Exception):
                await w.call({"cmd": "exit"}, timeout=10)
            children.stop(w.proc, grace=5)
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Goldwire fan-out benchmark (see the module doc).")
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--rates", default="20", help="messages/s, comma-separated steps (20)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per step (10)")
    p.add_argument("--idle-connections", type=int, default=5000,
                   help="idle connections for the memory test; 0 skips it (5000)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny run: 50 clients, 2 s, 200 idle connections")
    p.add_argument("--systems", default="goldwire,ceiling",
                   help="comma-separated, run in this order: goldwire, socketio, node, "
                        "ceiling, asgi (goldwire,ceiling)")
    p.add_argument("--skip-ceiling", action="store_true", help="drop ceiling from --systems")
    p.add_argument("--asgi-send", choices=("loop", "gather"), default="loop",
                   help="asgi server: a loop of `await ws.send_text` or asyncio.gather of "
                        "them (loop)")
    p.add_argument("--asgi-ws", default="auto",
                   help="asgi server: uvicorn's --ws implementation (auto = uvicorn's default)")
    p.add_argument("--publish-via", choices=("client", "redis", "http"), default="client",
                   help="Goldwire publisher: goldwire.client.RedisPublisher (as a backend "
                        "publishes), the bare room_publish.lua on Redis, or POST /v1/publish "
                        "(client)")
    p.add_argument("--no-services", action="store_true",
                   help="run the gateway alone, without the service processes `goldwire up` "
                        "would start beside it")
    p.add_argument("--payload-bytes", type=int, default=100,
                   help="padding in each message's data (100)")
    p.add_argument("--heartbeat", type=float, default=30.0,
                   help="server ping interval in s, gateway and ceiling alike (30)")
    p.add_argument("--client-procs", type=int, default=0,
                   help="client processes (default: one per client CPU)")
    p.add_argument("--concurrency", type=int, default=100,
                   help="handshakes in flight per client process (100)")
    p.add_argument("--connect-timeout", type=float, default=30.0)
    p.add_argument("--src-addrs", type=int, default=0,
                   help="loopback source addresses 127.0.0.1..N (default: one per "
                        f"{PORTS_PER_SOURCE} connections)")
    p.add_argument("--redis", choices=("single", "cluster"), default="single",
                   help="one private Redis, or a private 3-master + 3-replica Redis Cluster "
                        "with a plain jobs Redis (single)")
    p.add_argument("--no-pin", action="store_true",
                   help="do not pin the server and the clients to separate CPUs")
    args = p.parse_args(argv)
    if args.smoke:
        args.clients, args.duration, args.idle_connections = 50, 2.0, 200
    return args


def make_config(args: argparse.Namespace) -> Config:
    rates = [float(x) for x in args.rates.split(",") if x.strip()]
    if not rates or any(r <= 0 for r in rates):
        raise SystemExit("--rates: positive numbers, comma-separated")
    if args.clients <= 0 or args.duration <= 0:
        raise SystemExit("--clients and --duration must be positive")
    systems = [x.strip() for x in args.systems.split(",") if x.strip()]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown or not systems or len(set(systems)) != len(systems):
        raise SystemExit(f"--systems: distinct names out of {', '.join(SYSTEMS)}")
    if args.skip_ceiling:
        systems = [x for x in systems if x != "ceiling"]
    if args.redis == "cluster" and "socketio" in systems:
        raise SystemExit("--redis cluster: socketio's AsyncRedisManager cannot use a cluster")
    if args.redis == "cluster" and "node" in systems:
        raise SystemExit("--redis cluster: node's @socket.io/redis-adapter here is the classic "
                         "one on one Redis (a cluster needs its sharded adapter)")
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus: set[int] | None = None
    client_cpus: set[int] | None = None
    if not args.no_pin and len(cpus) >= 2:
        server_cpus, client_cpus = {cpus[0]}, set(cpus[1:])
    procs = args.client_procs or (len(client_cpus) if client_cpus else 1)
    return Config(
        clients=args.clients, rates=rates, duration=args.duration,
        idle_connections=max(0, args.idle_connections), skip_ceiling=args.skip_ceiling,
        publish_via=args.publish_via, payload_bytes=max(0, args.payload_bytes),
        heartbeat=args.heartbeat, concurrency=max(1, args.concurrency),
        connect_timeout=args.connect_timeout, client_procs=max(1, procs),
        src_addrs=max(0, args.src_addrs), server_cpus=server_cpus, client_cpus=client_cpus,
        systems=systems, asgi_send=args.asgi_send, asgi_ws=args.asgi_ws, smoke=args.smoke,
        services=not args.no_services, redis=args.redis,
    )


def start_redis(cfg: Config, started: list[RedisServer | LocalCluster]) -> list[int]:
    """Start the Redis of `cfg.redis`, set `cfg.redis_url` (and `jobs_redis_url` for a
    cluster), append what must be stopped to `started`; return every Redis pid."""
    if cfg.redis == "cluster":
        cluster = LocalCluster(die_with_parent=True)
        started.append(cluster)
        cluster.start()
        jobs = RedisServer(die_with_parent=True)
        started.append(jobs)
        jobs.start()
        cfg.redis_url, cfg.jobs_redis_url = cluster.url, jobs.url
        log(f"Redis Cluster 3+3 up in {cluster.start_seconds:.1f} s; jobs on {jobs.url}")
        return [pid for pid in (*(n.server.pid for n in cluster.nodes), jobs.pid) if pid]
    single = RedisServer(die_with_parent=True)
    started.append(single)
    single.start()
    assert single.pid is not None
    cfg.redis_url = single.url
    return [single.pid]


def data_client(url: str, cluster: bool) -> Any:
    """The bench's own asyncio client for Goldwire's data Redis: cluster-aware on a cluster."""
    from redis.asyncio import Redis, RedisCluster

    return RedisCluster.from_url(url) if cluster else Redis.from_url(url)


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    cfg = make_config(parse_args(argv))
    if "node" in cfg.systems:  # install (or refuse) before any server starts
        try:
            ensure_node_peer()
        except RuntimeError as exc:
            raise SystemExit(f"error: {exc}") from None
    nofile = raise_nofile()
    need = max(cfg.clients, cfg.idle_connections + 200) + 100
    if nofile < need:
        log(f"warning: RLIMIT_NOFILE is {nofile}, below the {need} sockets this run needs")
    if cfg.client_cpus:
        os.sched_setaffinity(0, cfg.client_cpus)  # the publisher runs beside the clients
    log(f"server CPUs {sorted(cfg.server_cpus) if cfg.server_cpus else 'any'}, client CPUs "
        f"{sorted(cfg.client_cpus) if cfg.client_cpus else 'any'}, {cfg.client_procs} client "
        f"process(es); {cfg.clients} clients, rates {cfg.rates}, {cfg.duration:g} s per step, "
        f"{cfg.idle_connections} idle connections; systems {','.join(cfg.systems)}")
    signal.signal(signal.SIGTERM, _sigterm)
    log_dir = tempfile.mkdtemp(prefix="goldwire-fanout-")
    children = Children(log_dir)
    redis: list[RedisServer | LocalCluster] = []
    started = time.monotonic()
    try:
        pids = start_redis(cfg, redis)
        for pid in pids:
            pin_all_threads(pid, cfg.client_cpus)
        rc = asyncio.run(bench(cfg, children, pids))
        log(f"done in {time.monotonic() - started:.1f} s (server logs in {log_dir})")
        return rc
    except KeyboardInterrupt:
        log("interrupted; stopping everything")
        return 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        children.stop_all()
        for server in redis:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
