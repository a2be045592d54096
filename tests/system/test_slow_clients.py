"""Slowloris: connections that never send a whole request are dropped within the request
deadline (HTTP_REQUEST_TIMEOUT), on the gateway and on the services, while real clients
carry on. Raw TCP sockets against real processes."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest

from tests.support import Client, Gateway, Presence, token

pytestmark = pytest.mark.asyncio

DEADLINE = 1.0


def open_raw(port: int, first_bytes: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    if first_bytes:
        sock.sendall(first_bytes)
    sock.setblocking(False)
    return sock


async def closed_by_server(sock: socket.socket, within: float) -> bytes:
    """Everything the server sent before closing; fails if it is still open after `within`."""
    loop = asyncio.get_running_loop()
    received = b""
    async with asyncio.timeout(within):
        while True:
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk:
                return received
            received += chunk


SLOW = {
    "silent": b"",
    "half a request head": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ",
    "half a body": b"POST /v1/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 100\r\n\r\n{\"room\":",
    "half a WebSocket handshake": b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n",
}


async def test_the_gateway_drops_slow_and_silent_connections(redis_server, key_prefix) -> None:
    gw = Gateway(redis_server.url, key_prefix, http_request_timeout=DEADLINE).start()
    try:
        socks = {kind: [open_raw(gw.port, head) for _ in range(25)]
                 for kind, head in SLOW.items()}
        started = time.monotonic()
        # A real client connected alongside is not touched: its handshake finished in time,
        # and the deadline covers only reading a request.
        ws = await Client.open(gw.url, token(), rooms=[{"room": "doc:s"}])
        for kind, group in socks.items():
            answers = await asyncio.gather(*(closed_by_server(s, DEADLINE + 4) for s in group))
            for answer in answers:
                assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), (kind, answer[:80])
            for s in group:
                s.close()
        assert time.monotonic() - started < DEADLINE + 4
        # Stays a sleep: proving the socket is NOT dropped means waiting out the deadline.
        await asyncio.sleep(DEADLINE + 0.2)  # past the deadline: the socket lives on
        assert (await ws.ok("ping")) == {"pong": True}
        async with httpx.AsyncClient() as http:
            assert (await http.get(gw.http + "/healthz")).status_code == 200
        assert "goldwire_gateway_http_request_timeouts_total 100" in gw.metrics()
        await ws.close()
    finally:
        gw.terminate()


async def test_the_services_drop_silent_connections_too(redis_server, key_prefix) -> None:
    svc = Presence(redis_server.url, key_prefix, http_request_timeout=DEADLINE).start()
    try:
        socks = [open_raw(svc.port, b"") for _ in range(20)]
        socks += [open_raw(svc.port, SLOW["half a request head"]) for _ in range(20)]
        await asyncio.gather(*(closed_by_server(s, DEADLINE + 4) for s in socks))
        for s in socks:
            s.close()
        async with httpx.AsyncClient() as http:
            assert (await http.get(svc.http + "/healthz")).status_code == 200
    finally:
        svc.terminate()
