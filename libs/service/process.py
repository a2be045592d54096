"""The entry point of one service process (`goldwire <kind>`), configured from env."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable
from typing import Any

import uvicorn

from goldwire.service.clients import jobs_redis_problem
from goldwire.service.http_deadline import deadline_protocol
from goldwire.service.logs import configure_logging
from goldwire.service.tracing import setup_tracing

DEFAULT_HTTP_REQUEST_TIMEOUT = 10.0  # seconds to receive a whole request (HTTP_REQUEST_TIMEOUT)


def freeze_startup_heap() -> None:
    """Keep what start-up allocated (modules, the app) out of every later GC pass.

    Why: a full collection walks every tracked object, and the imported framework
    code alone is hundreds of thousands of them; measured here, a service paused
    20-50 ms in one gen-2 pass while it was fanning out presence. Frozen objects are
    never collected, which costs nothing for what lives as long as the process.
    """
    gc.collect()
    gc.freeze()


def run_service(create_app: Callable[[Any], Any], settings: Any, host: str, port: int,
                service: str | None = None) -> None:
    """Run one service process; `service` names it in every log line. Left out, it is
    the package `create_app` comes from (`goldwire.<service>.api`)."""
    name = service or create_app.__module__.split(".")[1]
    logs = configure_logging(name)
    problem = jobs_redis_problem(settings)
    if problem:  # one line, before anything starts: the operator sees why at once
        print(f"goldwire {name}: {problem}", file=sys.stderr)
        raise SystemExit(2)
    app = create_app(settings)
    setup_tracing(app, name)  # only with OTEL_EXPORTER_OTLP_ENDPOINT
    freeze_startup_heap()
    timeout = float(os.environ.get("HTTP_REQUEST_TIMEOUT") or DEFAULT_HTTP_REQUEST_TIMEOUT)
    # log_config=None: uvicorn keeps its hands off the handlers configure_logging installed.
    uvicorn.run(app, host=host, port=port, log_config=None, log_level=logs.levelno,
                access_log=False, lifespan="on", http=deadline_protocol(timeout))
