"""HTTP pieces every service uses: API-key auth, /healthz, /readyz, /metrics."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (any case of `Bearer`), or
    None when the header is missing, names another scheme or has no token. The one
    parser for API keys and user JWTs, over HTTP and on the WebSocket upgrade."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def known_key(key: str, keys: Iterable[str]) -> bool:
    """`key` is one of `keys`, compared in constant time (no timing oracle on API keys)."""
    return any(hmac.compare_digest(key.encode(), k.encode()) for k in keys)


def api_key_checker(keys_of: Callable[[Request], frozenset[str]]) -> Callable[[Request], None]:
    """A FastAPI dependency: `Authorization: Bearer <key>` must be one of the keys."""

    def require_api_key(request: Request) -> None:
        key = bearer_token(request.headers.get("authorization"))
        if key is None or not known_key(key, keys_of(request)):
            raise HTTPException(401, "missing or unknown API key")

    return require_api_key


def ascii_validation_errors(app: FastAPI) -> None:
    """422s rendered with `ensure_ascii`: a body holding a lone surrogate (`"\\ud800"`, valid
    JSON) is echoed back in the error, and FastAPI's own handler, encoding it as UTF-8,
    raised UnicodeEncodeError: a 500 (found by tests/system/test_fuzz_protocol.py)."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        body = json.dumps({"detail": jsonable_encoder(exc.errors())})
        return Response(body, status_code=422, media_type="application/json")


def document_error_details(app: FastAPI) -> None:
    """Declare in the OpenAPI what a 422 (and every other error) body's `detail` really is.

    FastAPI documents 422 as `HTTPValidationError`, `detail` an array of pydantic errors;
    the routes' own checks raise `HTTPException(422, "<param>: <what is wrong>")` (a
    string) and the gateway's `{"code", "message"}` (an object), so the declaration named
    a shape half of the 422s did not have (found by tests/system/test_schemathesis.py)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        error = schema.get("components", {}).get("schemas", {}).get("HTTPValidationError")
        if error is not None:
            error["properties"]["detail"] = {"title": "Detail", "anyOf": [
                {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}},
                {"type": "string"},
                {"type": "object"},
            ]}
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def add_health_routes(app: FastAPI, checks: Callable[[Request], Awaitable[dict[str, bool]]],
                      metrics: Callable[[Request], Awaitable[bytes]],
                      alive: Callable[[Request], bool] | None = None) -> None:
    """/healthz (the process answers and `alive`: its background loops run), /readyz
    (every check true), /metrics (`metrics` renders the exposition text, see
    goldwire.service.metrics). A process whose stream consumer died still answers
    HTTP but does nothing: /healthz is 503 then, so the orchestrator restarts it."""

    @app.get("/healthz")
    async def healthz(request: Request) -> JSONResponse:
        if alive is not None and not alive(request):
            return JSONResponse({"status": "dead", "detail": "a background loop stopped"},
                                status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        try:
            results: dict[str, Any] = await checks(request)
        except Exception as exc:  # a check that cannot run is a failed check
            results = {"error": str(exc)}
        ready = bool(results) and all(v is True for v in results.values())
        return JSONResponse({"ready": ready, "checks": results},
                            status_code=200 if ready else 503)

    @app.get("/metrics", response_class=PlainTextResponse)  # documented as text, not JSON
    async def metrics_route(request: Request) -> PlainTextResponse:
        return PlainTextResponse(await metrics(request), media_type=CONTENT_TYPE_LATEST)
