"""`goldwire gateway`: one gateway process, configured from the environment."""

from __future__ import annotations

from typing import Any

import uvicorn

from goldwire.gateway.app import create_app
from goldwire.gateway.settings import GatewaySettings
from goldwire.gateway.transport import WebSocketTransport
from goldwire.service import freeze_startup_heap
from goldwire.service.http_deadline import deadline_protocol
from goldwire.service.logs import configure_logging
from goldwire.service.tracing import setup_tracing


def build_server(settings: GatewaySettings, log_level: str | int = "info") -> uvicorn.Server:
    app = create_app(settings)
    setup_tracing(app, "gateway", settings.node_id)  # only with OTEL_EXPORTER_OTLP_ENDPOINT
    config = uvicorn.Config(
        app,
        host=settings.gateway_host,
        port=settings.gateway_port,
        ws=WebSocketTransport,  # sockets skip ASGI: see transport.py
        # Silent or half-sent requests (and WebSocket handshakes) are dropped (slowloris).
        http=deadline_protocol(settings.http_request_timeout, _count_request_timeout),
        lifespan="on",
        timeout_graceful_shutdown=int(settings.drain_timeout),
        access_log=False,
        log_config=None,  # keep the handlers configure_logging installed (or the caller's)
        log_level=log_level,
    )
    return uvicorn.Server(config)


def _count_request_timeout(app_state: dict[str, Any]) -> None:
    node = app_state.get("node")
    if node is not None:
        node.metrics.http_request_timeouts += 1


def run() -> None:
    settings = GatewaySettings()
    logs = configure_logging("gateway", settings.node_id)
    server = build_server(settings, logs.levelno)
    freeze_startup_heap()
    server.run()
