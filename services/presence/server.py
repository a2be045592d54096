"""`goldwire presence`: one presence process (consumer, arq jobs, HTTP API) from the environment."""

from __future__ import annotations

import logging
import os

import uvicorn

from goldwire.presence.api import create_app
from goldwire.presence.settings import PresenceSettings


def run() -> None:
    level = os.environ.get("LOG_LEVEL", "info").lower()
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = PresenceSettings()
    uvicorn.run(create_app(settings), host=settings.presence_host, port=settings.presence_port,
                log_level=level, access_log=False, lifespan="on")
