"""Test support: real gateway processes on free ports and a small raw WebSocket client.

Gateways run as separate OS processes (`python -m goldwire.cli gateway`), as
in production, so tests can kill -9 them. `RawClient` speaks WebSocket over
a plain socket, for tests that need a peer which misbehaves (never reads,
never answers pings) in ways a real client library would not allow.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from goldwire.cli.procutil import parent_death_signal
from goldwire.cli.tokens import mint_token

SECRET = "test-secret-0123456789-0123456789-abcdef"
API_KEY = "test-api-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def until(check: Any, timeout: float = 20, interval: float = 0.05) -> Any:
    """Poll `check()` (sync or async) until it returns something truthy, and return that:
    the one way tests wait for a condition, instead of sleeping a guessed time."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"not reached within {timeout}s: {last!r}")
        await asyncio.sleep(interval)


def wait_ready(proc: subprocess.Popen[bytes], url: str, what: str, within: float = 20) -> None:
    """Until `url` answers 200; raises if `proc` exits first or `within` seconds pass."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready")


class Service:
    """One service process (`python -m goldwire.cli <kind>`) on a free port."""

    kind = "gateway"
    port_variable = "GATEWAY_PORT"

    def __init__(self, redis_url: str, prefix: str, **settings: Any) -> None:
        self.port = free_port()
        self.prefix = prefix
        self.env = dict(os.environ)
        self.env.update({
            "REDIS_URL": redis_url,
            "GOLDWIRE_KEY_PREFIX": prefix,
            "JWT_SECRET": SECRET,
            "API_KEYS": API_KEY,
            self.port_variable: str(self.port),
            "LOG_LEVEL": "warning",
        })
        self.env.update({k.upper(): str(v) for k, v in settings.items()})
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, stderr: Any = None) -> Any:
        """`stderr`: where the process's log goes (a file, for tests that read it)."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "goldwire.cli", self.kind], env=self.env, stderr=stderr,
            preexec_fn=parent_death_signal(signal.SIGKILL),  # no orphan if pytest dies
        )
        wait_ready(self.proc, self.http + "/readyz", self.kind)
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 20) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def metrics(self) -> str:
        return httpx.get(self.http + "/metrics", timeout=2).text

    def api(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.http,
                                 headers={"Authorization": f"Bearer {API_KEY}"})


class Gateway(Service):
    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


class Presence(Service):
    kind = "presence"
    port_variable = "PRESENCE_PORT"


class Sessions(Service):
    kind = "sessions"
    port_variable = "SESSIONS_PORT"


class Activity(Service):
    kind = "activity"
    port_variable = "ACTIVITY_PORT"


def jobs_url(redis_url: str) -> str:
    """Where the services' arq jobs live: JOBS_REDIS_URL when the tests set one (a
    cluster run, see tests/conftest.py), else the data Redis."""
    return os.environ.get("JOBS_REDIS_URL") or redis_url


def token(user: str = "u1", name: str | None = "Ada", tenant: str | None = None,
          rooms: tuple[str, ...] = ("*",), publish: tuple[str, ...] = ("*",), ttl: int = 3600,
          **kw: Any) -> str:
    return mint_token(SECRET, user, name=name, tenant=tenant, rooms=rooms, publish=publish,
                      ttl=ttl, **kw)


class Client:
    """A websockets client with ref-matched commands and a queue of other frames."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ref = 0
        self._backlog: list[dict[str, Any]] = []  # frames that arrived while awaiting a reply
        self.connected: dict[str, Any] = {}

    @classmethod
    async def open(cls, url: str, tok: str | None = None, **connect: Any) -> Client:
        client = cls(await websockets.connect(url, max_size=None))
        if tok is not None:
            client.connected = await client.command("connect", token=tok, **connect)
        return client

    async def command(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send a command and return its reply (success or error), skipping other frames."""
        self._ref += 1
        ref = self._ref
        await self.ws.send(json.dumps({"op": op, "ref": ref, **fields}))
        while True:
            msg = json.loads(await asyncio.wait_for(self.ws.recv(), 5))
            if msg.get("ref") == ref:
                return msg
            self._backlog.append(msg)

    async def ok(self, op: str, **fields: Any) -> dict[str, Any]:
        reply = await self.command(op, **fields)
        assert reply["type"] == "system_message", reply
        return reply["data"]

    async def recv(self, timeout: float = 5) -> dict[str, Any]:
        if self._backlog:
            return self._backlog.pop(0)
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def recv_type(self, type_: str, timeout: float = 5) -> dict[str, Any]:
        while True:
            msg = await self.recv(timeout)
            if msg["type"] == type_:
                return msg

    async def closed_with(self, timeout: float = 5) -> int | None:
        """Read until the server closes; return the close code."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self.ws.recv()
        except websockets.ConnectionClosed:
            pass
        return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()


class RawClient:
    """A WebSocket peer on a bare socket that reads only when told to."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        # A small receive window, set before connecting, so the server's own outbound
        # queue fills after kilobytes rather than after megabytes of kernel buffers.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert b" 101 " in head.split(b"\r\n")[0], head

    def send_text(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def close(self) -> None:
        self.sock.close()
