"""`X-Request-ID` on every HTTP request: taken from the caller (a proxy's or the
gateway's) or made here, echoed on the response, and put in the log context so every
line logged while the request runs carries it as `request_id`.

A bare ASGI middleware rather than Starlette's `BaseHTTPMiddleware`: it adds one
contextvar set and one header to a request, not a task and a response copy.
"""

from __future__ import annotations

import os
import re
from typing import Any

from goldwire.service.logs import log_context

HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode()
# An id from outside is kept if it is 1-128 printable ASCII characters with no space;
# anything else is replaced rather than written into every log line.
_FIT = re.compile(rb"[!-~]{1,128}")


def _given(headers: list[tuple[bytes, bytes]]) -> str | None:
    for key, value in headers:
        if key == _HEADER_KEY:
            return value.decode("ascii") if _FIT.fullmatch(value) else None
    return None


class RequestIdMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _given(scope.get("headers") or []) or os.urandom(16).hex()
        echoed = (_HEADER_KEY, request_id.encode("ascii"))

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        with log_context(request_id=request_id):
            await self.app(scope, receive, send_with_id)
