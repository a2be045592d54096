"""`goldwire gateway`: one gateway process, configured from the environment."""

from __future__ import annotations

import logging
import os
from typing import Any

import uvicorn

from goldwire.gateway.app import create_app
from goldwire.gateway.settings import GatewaySettings
from goldwire.gateway.transport import WebSocketTransport
from goldwire.service import freeze_startup_heap
from goldwire.service.http_deadline import deadline_protocol


def build_server(settings: GatewaySettings, log_level: str = "info") -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        ws=WebSocketTransport,  # sockets skip ASGI: see transport.py
        # Silent or half-sent requests (and WebSocket handshakes) are dropped (slowloris).
        http=deadline_protocol(settings.http_request_timeout, _count_request_timeout),
        lifespan="on",
        timeout_graceful_shutdown=int(settings.drain_timeout),
        access_log=False,
        log_level=log_level,
    )
    return uvicorn.Server(config)


def _count_request_timeout(app_state: dict[str, Any]) -> None:
    node = app_state.get("node")
    if node is not None:
        node.metrics.http_request_timeouts += 1


def run() -> None:
    level = os.environ.get("LOG_LEVEL", "info").lower()
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = GatewaySettings()
    server = build_server(settings, level)
    freeze_startup_heap()
    server.run()
