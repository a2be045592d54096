"""The entry point of one service process (`goldwire <kind>`), configured from env."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import uvicorn


def run_service(create_app: Callable[[Any], Any], settings: Any, host: str, port: int) -> None:
    level = os.environ.get("LOG_LEVEL", "info").lower()
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    uvicorn.run(create_app(settings), host=host, port=port, log_level=level,
                access_log=False, lifespan="on")
