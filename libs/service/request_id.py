"""`X-Request-ID` on every HTTP request: taken from the caller (a proxy's or the
gateway's) or made here, echoed on the response, and put in the log context so every
line logged while the request runs carries it as `request_id`.

A bare ASGI middleware rather than Starlette's `BaseHTTPMiddleware`: it adds one
contextvar set and one header to a request, not a task and a response copy.
"""

from __future__ import annotations

import uuid
from typing import Any

from goldwire.service.logs import log_context

HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode()
MAX_LENGTH = 128  # a longer (or non-printable) id from outside is replaced, not logged


def _given(headers: list[tuple[bytes, bytes]]) -> str | None:
    for key, value in headers:
        if key == _HEADER_KEY:
            if 0 < len(value) <= MAX_LENGTH and all(33 <= b < 127 for b in value):
                return value.decode("ascii")
            return None
    return None


class RequestIdMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _given(scope.get("headers") or []) or uuid.uuid4().hex
        echoed = (_HEADER_KEY, request_id.encode("ascii"))

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        with log_context(request_id=request_id):
            await self.app(scope, receive, send_with_id)
