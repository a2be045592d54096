"""The ceiling of the fan-out benchmark: a bare `websockets` broadcast server.

No Redis, no protocol, no auth: every WebSocket connection at any path is kept
in one set; each newline-terminated line that arrives on the control port is
broadcast to all of them as one text frame with
`websockets.asyncio.server.broadcast`. The first frame a client sends (its
`connect`) is answered with `{"type":"system_message","data":{},"ref":1}` so the
benchmark clients treat it exactly like the gateway.

Rooms, for the many-rooms scenario: a socket is also kept in the set of the first
room its `connect` names (`"rooms":[{"room":...}]`), and a control line
`@<room>\t<frame>` is broadcast to that room's set only.

    python bench/ceiling_server.py --port 9001 --control-port 9002

Runs on uvloop when it is installed (the gateway does, through uvicorn) and
stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import signal

from websockets.asyncio.server import ServerConnection, broadcast, serve

ACK = '{"type":"system_message","data":{},"ref":1}'


def room_of(connect: str | bytes) -> str:
    """The first room a `connect` frame names, or "" (bad frames are not this server's
    business)."""
    try:
        return str(json.loads(connect)["rooms"][0]["room"])
    except (ValueError, LookupError, TypeError):
        return ""


def split_line(line: bytes) -> tuple[str | None, str]:
    """A control line: `@<room>\t<frame>` for one room, or a bare frame for everyone."""
    line = line.rstrip(b"\n")
    if line.startswith(b"@"):
        room, _, frame = line[1:].partition(b"\t")
        return room.decode(), frame.decode()
    return None, line.decode()


async def run(host: str, port: int, control_port: int, ping_interval: float | None) -> None:
    conns: set[ServerConnection] = set()
    rooms: dict[str, set[ServerConnection]] = {}

    async def handler(ws: ServerConnection) -> None:
        conns.add(ws)
        room: str | None = None
        try:
            async for msg in ws:
                if room is None:
                    room = room_of(msg)
                    rooms.setdefault(room, set()).add(ws)
                await ws.send(ACK)
        finally:
            conns.discard(ws)
            if room is not None:
                members = rooms.get(room)
                if members is not None:
                    members.discard(ws)
                    if not members:
                        del rooms[room]

    async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                room, frame = split_line(line)
                broadcast(conns if room is None else rooms.get(room, ()), frame)
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
