"""The ceiling of the fan-out benchmark: a bare `websockets` broadcast server.

No Redis, no protocol, no auth: every WebSocket connection at any path is kept
in one set; each newline-terminated line that arrives on the control port is
broadcast to all of them as one text frame with
`websockets.asyncio.server.broadcast`. The first frame a client sends (its
`connect`) is answered with `{"type":"system_message","data":{},"ref":1}` so the
benchmark clients treat it exactly like the gateway.

    python bench/ceiling_server.py --port 9001 --control-port 9002

Runs on uvloop when it is installed (the gateway does, through uvicorn) and
stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import signal

from websockets.asyncio.server import ServerConnection, broadcast, serve

ACK = '{"type":"system_message","data":{},"ref":1}'


async def run(host: str, port: int, control_port: int, ping_interval: float | None) -> None:
    conns: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        conns.add(ws)
        try:
            async for _ in ws:
                await ws.send(ACK)
        finally:
            conns.discard(ws)

    async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                broadcast(conns, line.rstrip(b"\n").decode())
        finally:
            writer.close()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve(handler, host, port, ping_interval=ping_interval, compression=None,
                     max_size=65536, backlog=4096):
        ctl = await asyncio.start_server(control, host, control_port, limit=1 << 20)
        print("READY", flush=True)
        await stop.wait()
        ctl.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--ping-interval", type=float, default=30.0,
                        help="seconds between pings; 0 turns them off (default 30, as the gateway)")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    coro = run(args.host, args.port, args.control_port, args.ping_interval or None)
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


if __name__ == "__main__":
    main()
