"""The ASGI reference of the fan-out benchmark: a FastAPI WebSocket endpoint under uvicorn.

The same broadcast as `bench/ceiling_server.py`, served the ordinary ASGI way:
uvicorn (its default WebSocket implementation, uvloop, no per-message-deflate)
runs a FastAPI app whose WebSocket endpoint, at any path, accepts the socket and
keeps the `WebSocket` object in one set. Each newline-terminated line that
arrives on the control port is sent to every socket with
`await ws.send_text(line)`, through Starlette's `WebSocket` and uvicorn's ASGI
`send`, before the next line is read (so every socket sees the lines in order):

* `--send loop` (default, the faster here): one `await ws.send_text(...)` after
  another. A send that finds its socket's buffer full waits for it, and so does
  the rest of that broadcast.
* `--send gather`: `asyncio.gather` of every socket's `send_text(...)` (a task
  per socket per message; a full socket holds up only the next line).

The first frame a client sends (its `connect`) is answered with
`{"type":"system_message","data":{},"ref":1}` so the benchmark clients treat it
exactly like the gateway. Rooms work as in the ceiling server: a socket joins the
first room its `connect` names, and `@<room>\t<frame>` goes to that room only.

    python bench/asgi_server.py --port 9001 --control-port 9002

Stops on SIGTERM or SIGINT (uvicorn's own handlers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
from collections.abc import AsyncIterator, Awaitable, Callable

import uvicorn
from ceiling_server import room_of, split_line
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

ACK = '{"type":"system_message","data":{},"ref":1}'


def create_app(host: str, control_port: int, send_mode: str) -> FastAPI:
    conns: set[WebSocket] = set()
    rooms: dict[str, set[WebSocket]] = {}

    async def send_loop(targets: set[WebSocket], text: str) -> None:
        for ws in tuple(targets):
            try:
                await ws.send_text(text)
            except Exception:  # closed under us: drop it, keep going
                targets.discard(ws)

    async def send_gather(targets: set[WebSocket], text: str) -> None:
        snapshot = tuple(targets)
        results = await asyncio.gather(*[ws.send_text(text) for ws in snapshot],
                                       return_exceptions=True)
        for ws, res in zip(snapshot, results, strict=True):
            if res is not None:
                targets.discard(ws)

    broadcast: Callable[[set[WebSocket], str], Awaitable[None]] = (
        send_gather if send_mode == "gather" else send_loop)

    async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                room, frame = split_line(line)
                await broadcast(conns if room is None else rooms.get(room, set()), frame)
        finally:
            writer.close()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        ctl = await asyncio.start_server(control, host, control_port, limit=1 << 20)
        print("READY", flush=True)
        try:
            yield
        finally:
            ctl.close()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    @app.websocket("/{path:path}")
    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        conns.add(ws)
        room: str | None = None
        try:
            while True:
                msg = await ws.receive_text()
                if room is None:
                    room = room_of(msg)
                    rooms.setdefault(room, set()).add(ws)
                await ws.send_text(ACK)
        except WebSocketDisconnect:
            pass
        finally:
            conns.discard(ws)
            if room is not None:
                members = rooms.get(room)
                if members is not None:
                    members.discard(ws)
                    if not members:
                        del rooms[room]

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--ping-interval", type=float, default=30.0,
                        help="seconds between pings; 0 turns them off (default 30, as the gateway)")
    parser.add_argument("--send", choices=("loop", "gather"), default="loop",
                        help="how one message reaches every socket (default loop)")
    parser.add_argument("--ws", default="auto",
                        help="uvicorn's --ws implementation (default auto: uvicorn's default)")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvicorn.run(
        create_app(args.host, args.control_port, args.send),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        ws=args.ws,
        ws_per_message_deflate=False,
        ws_max_size=65536,
        ws_ping_interval=args.ping_interval or None,
        lifespan="on",
        backlog=4096,
        timeout_graceful_shutdown=3,
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
