"""The gateway's HTTP face (FastAPI): publish and admin APIs, `/v2/sync`, the SDK, health, metrics.

The node and the forwarder (the pooled HTTP client `/v2/sync` calls the
services behind it with) are created in `lifespan` and handed to request
handlers and to the WebSocket transport through the lifespan state, never
through a global; so is `dispatch` (handlers.run_command), which the
transport gives every `Connection` it makes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from goldwire.gateway.admin_api import router as admin_router
from goldwire.gateway.cors import add_cors
from goldwire.gateway.handlers import run_command
from goldwire.gateway.health import (
    READYZ_DESCRIPTION,
    READYZ_RESPONSES,
    DeepHealth,
    gateway_checks,
)
from goldwire.gateway.node import GatewayNode, PublishTooLarge
from goldwire.gateway.publish_api import router as publish_router
from goldwire.gateway.sdk_route import router as sdk_router
from goldwire.gateway.settings import GatewaySettings
from goldwire.gateway.sync_api import Forwarder
from goldwire.gateway.sync_api import router as sync_router
from goldwire.protocol.names import DEFAULT_TENANT
from goldwire.service.http import ascii_validation_errors, document_error_details
from goldwire.service.metrics import CONTENT_TYPE_LATEST
from goldwire.service.request_id import RequestIdMiddleware

DeepQuery = Annotated[bool, Query(description="Also ask every service and read the event "
                                              "stream's consumer groups (cached ~1 s).")]


def create_app(settings: GatewaySettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        node = GatewayNode(settings)
        await node.start()
        forwarder = Forwarder(settings)
        health = DeepHealth(node, forwarder.client, forwarder.urls)
        try:
            # `dispatch` reaches each Connection through the transport (no import cycle).
            yield {"node": node, "forwarder": forwarder, "health": health,
                   "dispatch": run_command}
        finally:
            await health.aclose()
            await forwarder.aclose()
            await node.stop()

    # max_body_size: FastAPI (Starlette's RequestBodyLimitMiddleware) counts the bytes as
    # they arrive, with or without Content-Length, and answers 413 past MAX_BODY_BYTES.
    app = FastAPI(title="Goldwire gateway", version="1", lifespan=lifespan,
                  max_body_size=settings.max_body_bytes)
    app.include_router(publish_router)
    app.include_router(admin_router)
    app.include_router(sync_router)
    app.include_router(sdk_router)

    @app.middleware("http")
    async def record_api_use(request: Request, call_next: Any) -> Any:
        """Every /v1 and /v2 call becomes an `api` event (route, method, status, and
        the user when a token said who), for the activity service."""
        response = await call_next(request)
        if request.url.path.startswith(("/v1/", "/v2/")):
            route = request.scope.get("route")
            who = getattr(request.state, "principal", None)
            node: GatewayNode = request.state.node
            node.outbox.event("api", None, method=request.method,
                              route=getattr(route, "path", request.url.path),
                              code=response.status_code,
                              user=who.user_id if who else None,
                              tenant=who.tenant if who else DEFAULT_TENANT)
        return response

    @app.exception_handler(PublishTooLarge)
    async def too_large(request: Request, exc: PublishTooLarge) -> JSONResponse:
        return JSONResponse({"detail": {"code": "too_large", "message": str(exc)}},
                            status_code=413)

    app.add_middleware(RequestIdMiddleware)  # request_id in every line a request logs
    add_cors(app, settings)  # added last, so it runs first: preflights never reach routes

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness, of this gateway or of the whole stack",
             description=READYZ_DESCRIPTION, responses=READYZ_RESPONSES)
    async def readyz(request: Request, deep: DeepQuery = False) -> JSONResponse:
        if deep:
            health: DeepHealth = request.state.health
            answer = await health.answer()
            return JSONResponse(answer, status_code=200 if answer["ready"] else 503)
        checks = await gateway_checks(request.state.node)
        ready = all(checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get("/metrics", response_class=PlainTextResponse)  # documented as text, not JSON
    async def metrics(request: Request) -> PlainTextResponse:
        node: GatewayNode = request.state.node
        return PlainTextResponse(node.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    document_error_details(app)
    ascii_validation_errors(app)
    return app
