"""Optional gateway features on real processes: origin allowlist, compression, and the
backend authorization callback (a real local HTTP server)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import websockets

from tests.support import Client, Gateway, token

pytestmark = pytest.mark.asyncio


async def test_origin_allowlist(redis_server, key_prefix) -> None:
    gw = Gateway(redis_server.url, key_prefix,
                 allowed_origins="https://app.goldleaves.example").start()
    try:
        with pytest.raises(websockets.InvalidStatus) as info:
            await websockets.connect(gw.url, origin="https://evil.example")
        assert info.value.response.status_code == 403
        ok = Client(await websockets.connect(gw.url, origin="https://app.goldleaves.example"))
        assert (await ok.ok("connect", token=token()))["user"]["id"] == "u1"
        server_side = Client(await websockets.connect(gw.url))  # no Origin: a server
        assert (await server_side.ok("connect", token=token()))["user"]["id"] == "u1"
        await ok.close()
        await server_side.close()
    finally:
        gw.terminate()


async def test_per_message_deflate_when_enabled(redis_server, key_prefix) -> None:
    gw = Gateway(redis_server.url, key_prefix, per_message_deflate="true").start()
    try:
        plain = await Client.open(gw.url, token("plain"), rooms=[{"room": "doc:z"}])
        ws = await websockets.connect(gw.url, compression="deflate")
        zipped = Client(ws)
        await zipped.ok("connect", token=token("zip"), rooms=[{"room": "doc:z"}])
        assert ws.protocol.extensions, "deflate was negotiated"
        sent = await plain.ok("publish", room="doc:z", type="user_message",
                              data={"text": "x" * 2000})
        for c in (plain, zipped):
            msg = await c.recv_type("user_message")
            assert msg["offset"] == sent["offset"] and msg["data"]["text"] == "x" * 2000
        await plain.close()
        await zipped.close()
    finally:
        gw.terminate()


class _Authz(BaseHTTPRequestHandler):
    calls: list[dict] = []
    broken = False

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Authz.calls.append(body)
        if _Authz.broken:
            self.send_response(500)
            self.end_headers()
            return
        allow = body["room"].startswith("case:") and body["tenant"] == "default"
        payload = json.dumps({"allow": allow}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def authz_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Authz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Authz.calls, _Authz.broken = [], False
    yield f"http://127.0.0.1:{server.server_address[1]}/authorize"
    server.shutdown()


async def test_backend_authorization_callback_is_asked_and_cached(redis_server, key_prefix,
                                                                  authz_server) -> None:
    gw = Gateway(redis_server.url, key_prefix, authz_url=authz_server,
                 authz_cache_seconds=60).start()
    try:
        c = await Client.open(gw.url, token("u7", rooms=("doc:*",)))
        assert (await c.ok("join", room="doc:1"))["room"] == "doc:1"  # claims: no callback
        assert _Authz.calls == []
        assert (await c.ok("join", room="case:9"))["room"] == "case:9"
        assert _Authz.calls == [{"user": "u7", "tenant": "default", "room": "case:9",
                                 "action": "join"}]
        denied = await c.command("join", room="matter:3")
        assert denied["data"]["code"] == "forbidden"
        await c.ok("leave", room="case:9")
        await c.ok("join", room="case:9")  # answered from the cache
        assert len(_Authz.calls) == 2
        _Authz.broken = True
        failed = await c.command("join", room="case:other")
        assert failed["data"]["code"] == "unavailable"  # fails closed, says why
        assert (await c.ok("ping")) == {"pong": True}
        await c.close()
    finally:
        gw.terminate()


async def test_cors_allowlist_on_http_routes(redis_server, key_prefix) -> None:
    """ALLOWED_ORIGINS also governs HTTP: a listed origin gets credentials and its own
    origin back, a preflight is answered, an unlisted origin gets no CORS headers."""
    app_origin = "https://app.goldleaves.example"
    gw = Gateway(redis_server.url, key_prefix, allowed_origins=app_origin).start()
    try:
        async with httpx.AsyncClient(base_url=gw.http) as http:
            pre = await http.options("/v2/sync/preferences", headers={
                "Origin": app_origin, "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": "authorization, content-type"})
            assert pre.status_code == 200
            assert pre.headers["access-control-allow-origin"] == app_origin
            assert pre.headers["access-control-allow-credentials"] == "true"
            assert "PUT" in pre.headers["access-control-allow-methods"]
            assert "authorization" in pre.headers["access-control-allow-headers"].lower()
            got = await http.get("/v2/sync/preferences", headers={
                "Origin": app_origin, "Authorization": f"Bearer {token()}"})
            assert got.status_code in (200, 503)  # 503: no sessions service runs here;
            # the browser may read either answer
            assert got.headers["access-control-allow-origin"] == app_origin
            assert "origin" in got.headers.get("vary", "").lower()
            evil = await http.options("/v2/sync/preferences", headers={
                "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
            assert evil.status_code == 400
            assert "access-control-allow-origin" not in evil.headers
            plain = await http.get("/healthz", headers={"Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in plain.headers
    finally:
        gw.terminate()


async def test_cors_without_allowlist_is_a_wildcard_without_credentials(
        redis_server, key_prefix) -> None:
    gw = Gateway(redis_server.url, key_prefix).start()
    try:
        async with httpx.AsyncClient(base_url=gw.http) as http:
            pre = await http.options("/v1/publish", headers={
                "Origin": "https://any.example", "Access-Control-Request-Method": "POST"})
            assert pre.status_code == 200
            assert pre.headers["access-control-allow-origin"] == "*"
            assert "access-control-allow-credentials" not in pre.headers
    finally:
        gw.terminate()


async def test_sdk_is_served_as_a_cacheable_module(redis_server, key_prefix) -> None:
    """Every gateway serves the built SDK: JavaScript with its version banner, an ETag that
    revalidates to 304, and CORS so a page on another origin can import it."""
    app_origin = "https://app.goldleaves.example"
    gw = Gateway(redis_server.url, key_prefix, allowed_origins=app_origin).start()
    try:
        async with httpx.AsyncClient(base_url=gw.http) as http:
            got = await http.get("/sdk/goldwire.js", headers={"Origin": app_origin})
            assert got.status_code == 200
            assert got.headers["content-type"].startswith("text/javascript")
            assert got.headers["access-control-allow-origin"] == app_origin
            assert "max-age=" in got.headers["cache-control"]
            assert got.text.startswith("/*! @goldwire/client ")
            assert "export{" in got.text.replace(" ", "")  # an ES module
            etag = got.headers["etag"]
            again = await http.get("/sdk/goldwire.js", headers={"If-None-Match": etag})
            assert again.status_code == 304 and again.content == b""
            assert again.headers["etag"] == etag
            stale = await http.get("/sdk/goldwire.js", headers={"If-None-Match": '"old"'})
            assert stale.status_code == 200 and stale.content == got.content
    finally:
        gw.terminate()
