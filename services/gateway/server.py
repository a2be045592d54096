"""`goldwire gateway`: one gateway process, configured from the environment."""

from __future__ import annotations

import logging
import os

import uvicorn

from goldwire.gateway.app import create_app
from goldwire.gateway.settings import GatewaySettings
from goldwire.gateway.transport import WebSocketTransport
from goldwire.service import freeze_startup_heap


def build_server(settings: GatewaySettings, log_level: str = "info") -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        ws=WebSocketTransport,  # sockets skip ASGI: see transport.py
        lifespan="on",
        timeout_graceful_shutdown=int(settings.drain_timeout),
        access_log=False,
        log_level=log_level,
    )
    return uvicorn.Server(config)


def run() -> None:
    level = os.environ.get("LOG_LEVEL", "info").lower()
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = GatewaySettings()
    server = build_server(settings, level)
    freeze_startup_heap()
    server.run()
