"""`goldwire sessions`: one sessions process (consumer, arq job, HTTP API) from the environment."""

from __future__ import annotations

import logging
import os

import uvicorn

from goldwire.sessions.api import create_app
from goldwire.sessions.settings import SessionsSettings


def run() -> None:
    level = os.environ.get("LOG_LEVEL", "info").lower()
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = SessionsSettings()
    uvicorn.run(create_app(settings), host=settings.sessions_host, port=settings.sessions_port,
                log_level=level, access_log=False, lifespan="on")
