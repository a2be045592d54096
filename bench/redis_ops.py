"""Redis commands per room message, per connect and per disconnect, measured on a running
system (docs/deploy.md, the capacity model in docs/architecture.md).

Starts a private redis-server on a free port and `goldwire up` (gateway, presence,
sessions, activity) beside it, puts 10 clients in one room, and counts
`INFO commandstats` around N HTTP publishes and N WebSocket publishes; then around N
connects (authenticated, each joining a room of 10 with presence, every service recording it)
and their N disconnects. Counts include every command a Lua script runs; the idle
system's own rate is measured first and subtracted from the connect figures.

    .venv/bin/python bench/redis_ops.py [--messages 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis
import websockets

from goldwire.cli.tokens import mint_token

BIN = Path(sys.executable).parent
SECRET = "bench-secret-" + "x" * 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def calls(r: redis.Redis) -> dict[str, int]:
    """Calls per command, and `~cpu_us`: Redis's own CPU time so far (INFO cpu)."""
    stats = r.info("commandstats")
    out = {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()}
    out.update({"~us_" + k.removeprefix("cmdstat_"): v["usec"] for k, v in stats.items()})
    cpu = r.info("cpu")
    out["~cpu_us"] = int(1e6 * (cpu["used_cpu_sys"] + cpu["used_cpu_user"]))
    return out


def per_message(before: dict[str, int], after: dict[str, int], n: int) -> tuple[float, str]:
    delta = {k: v - before.get(k, 0) for k, v in after.items()
             if v - before.get(k, 0) and not k.startswith("~")}
    top = sorted(delta.items(), key=lambda kv: -kv[1])[:10]
    return sum(delta.values()) / n, ", ".join(f"{k} {v / n:.2f}" for k, v in top)


def costliest(before: dict[str, int], after: dict[str, int], n: int) -> str:
    """The commands that took Redis the most time per operation (a script's own time
    includes the commands it runs)."""
    delta = {k[4:]: v - before.get(k, 0) for k, v in after.items() if k.startswith("~us_")}
    top = sorted(delta.items(), key=lambda kv: -kv[1])[:5]
    return ", ".join(f"{k} {v / n:.0f} µs" for k, v in top if v > 0)


def cpu_per(before: dict[str, int], after: dict[str, int], n: int, idle_us_per_s: float,
            seconds: float) -> float:
    """Redis CPU µs per operation, the idle system's share taken off."""
    return (after["~cpu_us"] - before["~cpu_us"] - idle_us_per_s * seconds) / n


async def measure(gateway: int, r: redis.Redis, n: int) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(150):
            try:
                if (await http.get(f"http://127.0.0.1:{gateway}/readyz")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
        token = mint_token(SECRET, "u1", rooms="doc:*", publish="doc:*")
        sockets = []
        for _ in range(10):
            ws = await websockets.connect(f"ws://127.0.0.1:{gateway}/ws")
            await ws.send(json.dumps({"op": "connect", "token": token, "ref": 1,
                                      "rooms": [{"room": "doc:1"}]}))
            sockets.append(ws)

        async def read_all(ws: websockets.ClientConnection) -> None:
            try:
                async for _ in ws:
                    pass
            except websockets.ConnectionClosed:
                pass

        readers = [asyncio.create_task(read_all(ws)) for ws in sockets]
        await asyncio.sleep(3)
        before = calls(r)
        await asyncio.sleep(4)
        after = calls(r)
        idle, _ = per_message(before, after, 4)
        idle_cpu = (after["~cpu_us"] - before["~cpu_us"]) / 4
        print(f"idle system: {idle:.0f} commands/s, {idle_cpu / 1000:.1f} ms Redis CPU/s "
              "(taken off every figure below)")
        before, started = calls(r), time.monotonic()
        for i in range(n):
            await http.post(f"http://127.0.0.1:{gateway}/v1/publish",
                            headers={"Authorization": "Bearer bench-key"},
                            json={"room": "doc:1", "type": "document_update", "data": {"i": i}})
        await asyncio.sleep(4)  # the services catch up
        report("HTTP publish", "message", before, calls(r), n, idle, idle_cpu,
               time.monotonic() - started)
        before, started = calls(r), time.monotonic()
        for i in range(n):  # under RATE_LIMIT_PER_SECOND (50)
            await sockets[0].send(json.dumps({"op": "publish", "room": "doc:1",
                                              "type": "user_message", "data": {"i": i}}))
            await asyncio.sleep(0.03)
        await asyncio.sleep(4)
        report("WebSocket publish", "message", before, calls(r), n, idle, idle_cpu,
               time.monotonic() - started)
        for ws in sockets:
            await ws.close()
        await asyncio.gather(*readers)
        await measure_connects(gateway, r, n, idle, idle_cpu)


def report(what: str, per: str, before: dict[str, int], after: dict[str, int], n: int,
           idle: float, idle_cpu: float, spent: float) -> None:
    total, top = per_message(before, after, n)
    print(f"{what}: {total - idle * spent / n:.1f} commands/{per}, "
          f"{cpu_per(before, after, n, idle_cpu, spent):.0f} µs Redis CPU each "
          f"(top, idle included: {top}; costliest: {costliest(before, after, n)})")


async def measure_connects(gateway: int, r: redis.Redis, n: int, idle: float,
                           idle_cpu: float) -> None:
    """Commands per connect (and per disconnect), the idle rate taken off."""
    tokens = [mint_token(SECRET, f"c{i}", rooms="doc:*", publish="doc:*") for i in range(n)]
    before, started = calls(r), time.monotonic()
    sockets = []
    for i, token in enumerate(tokens):  # a user each: no per-user connection limit
        ws = await websockets.connect(f"ws://127.0.0.1:{gateway}/ws")
        # rooms of 10, a document's viewers (one big room costs more per join: presence)
        await ws.send(json.dumps({"op": "connect", "token": token, "ref": 1,
                                  "rooms": [{"room": f"doc:c{i // 10}", "presence": True}]}))
        await ws.recv()
        sockets.append(ws)
    await asyncio.sleep(4)  # the services record every connect and join
    report("connect + join with presence", "connect", before, calls(r), n, idle, idle_cpu,
           time.monotonic() - started)
    before, started = calls(r), time.monotonic()
    for ws in sockets:
        await ws.close()
    await asyncio.sleep(4)
    report("disconnect", "disconnect", before, calls(r), n, idle, idle_cpu,
           time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=500)
    args = parser.parse_args()
    redis_port, gateway = free_port(), free_port()
    ports = {k: str(free_port()) for k in ("PRESENCE", "SESSIONS", "ACTIVITY")}
    env = dict(os.environ, REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
               JWT_SECRET=SECRET, API_KEYS="bench-key",
               GATEWAY_PORT=str(gateway), LOG_LEVEL="warning",
               **{f"{k}_PORT": v for k, v in ports.items()},
               **{f"{k}_URL": f"http://127.0.0.1:{v}" for k, v in ports.items()})
    server = subprocess.Popen(["redis-server", "--port", str(redis_port), "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL)
    up = subprocess.Popen([str(BIN / "goldwire"), "up"], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        asyncio.run(measure(gateway, redis.Redis(port=redis_port), args.messages))
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(20)
        except subprocess.TimeoutExpired:
            up.kill()
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
