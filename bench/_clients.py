"""Cheap WebSocket clients for the fan-out benchmark: one process holds many sockets.

Run by `bench/fanout.py` as a child process (`python bench/_clients.py`); it is
driven over stdin/stdout with one JSON object per line, so the parent can pin it
to its own core and read its CPU time from /proc.

Each socket is a bare `asyncio.Protocol`: a hand-written HTTP upgrade, a frame
parser for server frames (never masked) and masked client frames (the
`connect` command, pongs, the close). A benchmark message carries
`"b":"<step> <seq> <publish time_ns>"` in its `data`; the parser finds that
string with `bytes.find` instead of decoding the JSON, and every socket checks
its own sequence for loss, duplicates and order.

Two wire protocols: `"proto": "goldwire"` (the default; also the ceiling's and the
ASGI server's) is ready when the reply to its `connect` (`"ref":1`) arrives;
`"proto": "sio"` speaks Engine.IO 4 / Socket.IO 5 straight over the WebSocket
(`/socket.io/?EIO=4&transport=websocket`, no HTTP long-polling first): its first
frame is the Socket.IO `CONNECT` packet (`40{auth}`), it is ready at the server's
`40{"sid":...}` and refused at `44{...}`, and it answers each Engine.IO ping (`2`)
with a pong (`3`). Events (`42["document_update",{...}]`) carry the same `"b"`
marker, so counting and checking is the same code for every server.

Commands (parent -> worker), one per line; every one gets one reply line:
  {"cmd": "connect", "host", "port", "path", "frames": [connect frame per socket],
   "src": [source addresses], "concurrency", "timeout", "proto"}
  {"cmd": "step", "step": k}       reset the per-step counters
  {"cmd": "count"}                 messages of the current step received so far, and
                                   other frames (replies, presence, pings) since the step began
  {"cmd": "report", "expected": n} the step's statistics and latency samples (µs)
  {"cmd": "close"}                 close every socket
  {"cmd": "exit"}
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import hashlib
import json
import os
import resource
import socket
import struct
import sys
import time
from array import array
from typing import Any

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MARK = b'"b":"'
MARK_LEN = len(MARK)
REPLY_REF = b'"ref":1'
EIO_PING = b"2"
SIO_CONNECTED = b"40"
SIO_CONNECT_ERROR = b"44"


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One masked, unfragmented client frame."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = os.urandom(4)
    if not n:
        return header + key
    stream = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")
    return header + key + masked


class StepStats:
    """What one worker saw during one step, summed over its sockets."""

    __slots__ = ("dup", "first_ns", "last_ns", "lat", "ooo", "other", "received", "stale", "step")

    def __init__(self, step: int) -> None:
        self.step = step
        self.lat = array("q")  # latency in µs of every first delivery
        self.received = 0  # benchmark frames of this step, duplicates included
        self.dup = 0
        self.ooo = 0
        self.stale = 0  # benchmark frames of another step
        self.other = 0  # non-benchmark frames
        self.first_ns = 0
        self.last_ns = 0


class BenchClient(asyncio.Protocol):
    __slots__ = (
        "accept", "buf", "close_code", "connect_frame", "error", "maxseq", "ready", "request",
        "seen", "sio", "transport", "uniq", "upgraded", "worker",
    )

    def __init__(self, worker: Worker, request: bytes, accept: bytes, connect_frame: bytes,
                 ready: asyncio.Future[None], sio: bool = False) -> None:
        self.worker = worker
        self.sio = sio
        self.request = request
        self.accept = accept
        self.connect_frame = connect_frame
        self.ready: asyncio.Future[None] | None = ready
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.buf = b""
        self.seen = bytearray()
        self.maxseq = -1
        self.uniq = 0
        self.close_code: int | None = None
        self.error: str | None = None

    def reset(self) -> None:
        self.seen = bytearray()
        self.maxseq = -1
        self.uniq = 0

    # --- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.worker.lost += 1
        if self.worker.closing:
            return
        self.worker.unexpected_closes += 1
        key = f"close {self.close_code}" if self.close_code is not None else "connection lost"
        self.worker.close_reasons[key] = self.worker.close_reasons.get(key, 0) + 1
        self._fail(self.error or key)

    def data_received(self, data: bytes) -> None:
        if self.buf:
            data = self.buf + data
            self.buf = b""
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf = data
                return
            head = data[:end]
            if not head.startswith(b"HTTP/1.1 101") or self.accept not in head:
                self._fail("upgrade refused: " + head.split(b"\r\n", 1)[0].decode(errors="replace"))
                self.transport.abort()  # type: ignore[union-attr]
                return
            self.upgraded = True
            self.transport.write(self.connect_frame)  # type: ignore[union-attr]
            data = data[end + 4:]
        now = time.time_ns()
        stats = self.worker.stats
        pos = 0
        n = len(data)
        got = False
        while n - pos >= 2:
            length = data[pos + 1]
            if length < 126:
                start = pos + 2
            elif length == 126:
                if n - pos < 4:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                start = pos + 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2:pos + 10], "big")
                start = pos + 10
            else:
                self.error = "masked frame from the server"
                self.transport.abort()  # type: ignore[union-attr]
                return
            end = start + length
            if end > n:
                break
            opcode = data[pos] & 0x0F
            pos = end
            if opcode == 1:
                i = data.find(MARK, start, end)
                if i < 0:
                    self._other(data[start:end])
                    continue
                j = data.find(b'"', i + MARK_LEN, end)
                step_s, seq_s, t_s = data[i + MARK_LEN:j].split()
                if int(step_s) != stats.step:
                    stats.stale += 1
                    continue
                got = True
                stats.received += 1
                seq = int(seq_s)
                seen = self.seen
                if seq >= len(seen):
                    seen.extend(bytes(seq - len(seen) + 256))
                if seen[seq]:
                    stats.dup += 1
                    continue
                seen[seq] = 1
                self.uniq += 1
                if seq < self.maxseq:
                    stats.ooo += 1
                else:
                    self.maxseq = seq
                stats.lat.append((now - int(t_s)) // 1000)
            elif opcode == 9:  # ping: answer with a pong carrying the same bytes
                self.transport.write(client_frame(0xA, data[start:end]))  # type: ignore[union-attr]
            elif opcode == 8:
                if end - start >= 2:
                    self.close_code = (data[start] << 8) | data[start + 1]
                self.transport.close()  # type: ignore[union-attr]
                return
            # pong (0xA), binary and continuation frames are not used by the servers here
        if pos < n:
            self.buf = data[pos:]
        if got:
            if not stats.first_ns:
                stats.first_ns = now
            stats.last_ns = now

    # --- helpers ---------------------------------------------------------------------------
    def _other(self, frame: bytes) -> None:
        self.worker.stats.other += 1
        if self.sio:
            self._sio_other(frame)
            return
        if self.ready is None or REPLY_REF not in frame:
            return
        if b'"type":"error"' in frame or b'"error":{' in frame:
            self._fail("connect refused: " + frame[:300].decode(errors="replace"))
            return
        ready, self.ready = self.ready, None
        if not ready.done():
            ready.set_result(None)

    def _sio_other(self, frame: bytes) -> None:
        if frame == EIO_PING:
            self.transport.write(client_frame(0x1, b"3"))  # type: ignore[union-attr]
            return
        if self.ready is None:
            return
        if frame.startswith(SIO_CONNECT_ERROR):
            self._fail("connect refused: " + frame[:300].decode(errors="replace"))
        elif frame.startswith(SIO_CONNECTED):
            ready, self.ready = self.ready, None
            if not ready.done():
                ready.set_result(None)
        # anything else before it (the Engine.IO open packet `0{...}`) is not the answer

    def _fail(self, why: str) -> None:
        ready, self.ready = self.ready, None
        if ready is not None and not ready.done():
            ready.set_exception(ConnectionError(why))

    def close(self) -> None:
        transport = self.transport
        if transport is None:
            return
        if self.upgraded:
            transport.write(client_frame(0x8, struct.pack("!H", 1000)))
        transport.close()


class Worker:
    def __init__(self) -> None:
        self.clients: list[BenchClient] = []
        self.stats = StepStats(-1)
        self.closing = False
        self.lost = 0
        self.unexpected_closes = 0
        self.close_reasons: dict[str, int] = {}

    async def connect(self, cmd: dict[str, Any]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        host, port, path = cmd["host"], int(cmd["port"]), cmd.get("path", "/ws")
        frames: list[str] = cmd["frames"]
        sources: list[str] = cmd.get("src") or []
        timeout = float(cmd.get("timeout", 30))
        sio = cmd.get("proto", "goldwire") == "sio"
        sem = asyncio.Semaphore(int(cmd.get("concurrency", 100)))
        self.closing = False
        errors: dict[str, int] = {}
        before = len(self.clients)
        started = time.perf_counter()

        async def open_one(i: int, frame: str) -> None:
            async with sem:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    sock.setblocking(False)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    if sources:
                        sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                        sock.bind((sources[i % len(sources)], 0))
                    await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
                except BaseException:
                    sock.close()
                    raise
                key = base64.b64encode(os.urandom(16))
                accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
                request = (
                    f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n"
                ).encode()
                ready: asyncio.Future[None] = loop.create_future()
                _, client = await loop.create_connection(
                    lambda: BenchClient(self, request, accept, client_frame(0x1, frame.encode()),
                                        ready, sio),
                    sock=sock,
                )
                try:
                    await asyncio.wait_for(ready, timeout)
                except BaseException:
                    client.close()
                    raise
                self.clients.append(client)

        results = await asyncio.gather(*(open_one(i, f) for i, f in enumerate(frames)),
                                       return_exceptions=True)
        for res in results:
            if isinstance(res, BaseException):
                why = f"{type(res).__name__}: {res}"[:200]
                errors[why] = errors.get(why, 0) + 1
        gc.collect()
        gc.freeze()  # the sockets live for the whole run: keep them out of every collection
        connected = len(self.clients) - before
        return {"connected": connected, "failed": len(frames) - connected,
                "errors": errors, "seconds": round(time.perf_counter() - started, 3)}

    def step(self, cmd: dict[str, Any]) -> dict[str, Any]:
        self.stats = StepStats(int(cmd["step"]))
        for client in self.clients:
            client.reset()
        return {"ok": True}

    def count(self) -> dict[str, Any]:
        return {"received": self.stats.received, "other": self.stats.other}

    def report(self, cmd: dict[str, Any]) -> dict[str, Any]:
        expected = int(cmd["expected"])
        stats = self.stats
        open_clients = [c for c in self.clients if c.transport is not None]
        lost = sum(max(0, expected - c.uniq) for c in self.clients)
        beyond = sum(max(0, c.uniq - expected) for c in self.clients)
        return {
            "step": stats.step,
            "clients": len(self.clients),
            "open": len(open_clients),
            "received": stats.received,
            "unique": sum(c.uniq for c in self.clients),
            "lost": lost,
            "unexpected": beyond,
            "duplicated": stats.dup,
            "out_of_order": stats.ooo,
            "stale": stats.stale,
            "other": stats.other,
            "first_ns": stats.first_ns,
            "last_ns": stats.last_ns,
            "unexpected_closes": self.unexpected_closes,
            "close_reasons": self.close_reasons,
            "lat_us": base64.b64encode(stats.lat.tobytes()).decode(),
        }

    async def close(self) -> dict[str, Any]:
        self.closing = True
        n = 0
        for client in self.clients:
            if client.transport is not None:
                client.close()
                n += 1
        for _ in range(100):  # up to 5 s for the servers to finish the closing handshakes
            if all(c.transport is None for c in self.clients):
                break
            await asyncio.sleep(0.05)
        for client in self.clients:
            if client.transport is not None:
                client.transport.abort()
        self.clients = []
        gc.unfreeze()
        gc.collect()
        self.unexpected_closes = 0
        self.close_reasons = {}
        return {"closed": n}


def _write(obj: dict[str, Any]) -> None:
    data = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
    view = memoryview(data)
    while view:
        written = os.write(1, view)
        view = view[written:]


async def serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 28)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    worker = Worker()
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        name = cmd.get("cmd")
        try:
            if name == "connect":
                out = await worker.connect(cmd)
            elif name == "step":
                out = worker.step(cmd)
            elif name == "count":
                out = worker.count()
            elif name == "report":
                out = worker.report(cmd)
            elif name == "close":
                out = await worker.close()
            elif name == "exit":
                await worker.close()
                _write({"ok": True})
                break
            else:
                out = {"error": f"unknown command {name!r}"}
        except Exception as exc:  # report, keep serving: the parent decides what to do
            out = {"error": f"{type(exc).__name__}: {exc}"}
        _write(out)


def main() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve())
    else:
        uvloop.run(serve())


if __name__ == "__main__":
    main()
