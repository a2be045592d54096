"""OpenTelemetry traces for the HTTP APIs and the publish path, on only when
`OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set.

Off (the default) costs nothing: OpenTelemetry is not even imported, and `span()`
hands back one shared no-op context manager. On, every process's FastAPI app gets a
server span per request (FastAPIInstrumentor; /healthz, /readyz and /metrics are left
out, probes would drown the rest), the gateway adds a `goldwire.publish` span per
publish with its target and outcome, and spans go out in batches over OTLP/HTTP
(`OTEL_EXPORTER_OTLP_*` and `OTEL_BSP_*` configure the exporter as the OpenTelemetry
spec says). WebSocket frames are not traced: sockets bypass ASGI (see
gateway/transport.py), and a span per frame would cost more than the frame.

The packages are the `otel` extra (`pip install goldwire[otel]`); an endpoint set
without them is a warning at start, not a crash.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

log = logging.getLogger("goldwire.tracing")

_NO_SPAN: AbstractContextManager[Any] = nullcontext()
_tracer: Any = None  # an opentelemetry Tracer once setup_tracing turned tracing on
UNTRACED_URLS = "healthz,readyz,metrics"


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def setup_tracing(app: Any, service: str, node: str | None = None,
                  environ: Mapping[str, str] = os.environ) -> bool:
    """Trace `app`'s requests when an OTLP endpoint is configured; True when on."""
    global _tracer
    if not enabled(environ):
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but %s is not installed "
                    "(pip install 'goldwire[otel]'): no traces", exc.name or exc)
        return False
    resource = Resource.create({"service.name": f"goldwire-{service}",
                                "service.instance.id": node or socket.gethostname()})
    provider = TracerProvider(resource=resource)  # flushes its batch at exit
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider,
                                       excluded_urls=UNTRACED_URLS)
    _tracer = provider.get_tracer("goldwire")
    log.info("traces go to %s", environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
             or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    return True


def span(name: str, attributes: Mapping[str, Any] | None = None) -> AbstractContextManager[Any]:
    """A child span of the current request's, or a shared no-op when tracing is off.
    Attributes whose value is None are left out."""
    if _tracer is None:
        return _NO_SPAN
    clean = {k: v for k, v in (attributes or {}).items() if v is not None}
    return _tracer.start_as_current_span(name, attributes=clean)  # type: ignore[no-any-return]
