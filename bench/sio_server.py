"""The peer of the benchmark: python-socketio `AsyncServer` + `AsyncRedisManager` under uvicorn.

Deployed the way its documentation shows for more than one process: the server's
client manager is an `AsyncRedisManager` (Redis pub/sub on one channel), and a
backend publishes with a write-only `AsyncRedisManager` (`bench/run_all.py` does
that, see `SioPublisher` there). It is served as an ASGI app (`socketio.ASGIApp`)
by uvicorn with uvloop and httptools, uvicorn's default WebSocket implementation,
no per-message-deflate.

Authentication is the same work Goldwire does at connect: the client's Socket.IO
`CONNECT` packet carries `{"token": <JWT>, "room": <room>}` in its auth payload; the
`connect` handler verifies the HS256 token (with `exp` and `sub` required, as the
gateway does), refuses the connection if it does not verify, and puts the socket
into its room. Engine.IO's heartbeat runs every `--ping-interval` seconds (the same
interval as the gateway's); uvicorn's own WebSocket pings are off, so there is one
heartbeat per socket, as with the others.

    python bench/sio_server.py --port 9001 --redis-url redis://127.0.0.1:6379/0 \\
        --channel bench-sio --jwt-secret SECRET

Stops on SIGTERM or SIGINT (uvicorn's own handlers).
"""

from __future__ import annotations

import argparse
import contextlib
import resource
from typing import Any

import jwt
import socketio
import uvicorn


def create_app(redis_url: str, channel: str, secret: str, ping_interval: float) -> Any:
    manager = socketio.AsyncRedisManager(redis_url, channel=channel)
    sio = socketio.AsyncServer(
        async_mode="asgi",
        client_manager=manager,
        transports=["websocket"],
        ping_interval=ping_interval,
        ping_timeout=20,
        max_http_buffer_size=65536,
        cors_allowed_origins=[],
        logger=False,
        engineio_logger=False,
    )

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> bool:
        if not isinstance(auth, dict) or not isinstance(auth.get("room"), str):
            return False
        try:
            jwt.decode(auth.get("token") or "", secret, algorithms=["HS256"],
                       options={"require": ["exp", "sub"]})
        except jwt.PyJWTError:
            return False
        await sio.enter_room(sid, auth["room"])
        return True

    return socketio.ASGIApp(sio, socketio_path="socket.io")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--channel", default="socketio",
                        help="the AsyncRedisManager channel (default socketio)")
    parser.add_argument("--jwt-secret", required=True)
    parser.add_argument("--ping-interval", type=float, default=30.0,
                        help="Engine.IO heartbeat in seconds (default 30, as the gateway)")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvicorn.run(
        create_app(args.redis_url, args.channel, args.jwt_secret, args.ping_interval or 30.0),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        ws_per_message_deflate=False,
        ws_max_size=65536,
        ws_ping_interval=None,
        lifespan="on",
        backlog=4096,
        timeout_graceful_shutdown=3,
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
