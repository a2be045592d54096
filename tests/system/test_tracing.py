"""OpenTelemetry traces (goldwire.service.tracing) from real processes to a real OTLP/HTTP
receiver: with OTEL_EXPORTER_OTLP_ENDPOINT set, a gateway's HTTP publish arrives as a
server span with a `goldwire.publish` child carrying its room and offset, a service's
request as its own service's span, and probes are not traced; without it nothing is
sent, and no OpenTelemetry SDK is loaded (FastAPI itself imports the API package).
The plain tests (no event loop) run subprocesses: tracing is process-wide state."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.support import Gateway, Presence, token, until


class Collector:
    """An OTLP/HTTP trace receiver on a free loopback port: keeps every span it gets as
    (service.name, span name, attributes)."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, dict[str, Any]]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server calls it by this name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.receive(self.path, body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def receive(self, path: str, body: bytes) -> None:
        assert path == "/v1/traces", path
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    attributes = {a.key: _value(a.value) for a in span.attributes}
                    self.spans.append((resource["service.name"], span.name, attributes))

    def names(self, service: str) -> list[str]:
        return [name for svc, name, _ in self.spans if svc == service]


def _value(value: Any) -> Any:
    return getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.server.shutdown()


def traced(service: Any, collector: Collector) -> Any:
    service.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.url
    service.env["OTEL_BSP_SCHEDULE_DELAY"] = "100"  # ms: batches go out quickly
    return service


async def test_publish_and_service_requests_arrive_as_spans(
        redis_server: Any, key_prefix: str, collector: Collector) -> None:
    presence = traced(Presence(redis_server.url, key_prefix), collector)
    gateway = traced(Gateway(redis_server.url, key_prefix, presence_url=presence.http),
                     collector)
    try:
        presence.start()
        gateway.start()
        async with gateway.api() as http:
            resp = await http.post("/v1/publish", json={
                "room": "doc:1", "type": "document_update", "data": {"n": 1}})
            assert resp.status_code == 200, resp.text
            offset = resp.json()["offset"]
            await http.get("/readyz")  # a probe: not traced
            sync = await http.get("/v2/sync/presence", params={"rooms": "doc:1"},
                                  headers={"Authorization": f"Bearer {token()}"})
            assert sync.status_code == 200, sync.text
        await until(lambda: "goldwire.publish" in collector.names("goldwire-gateway")
                    and collector.names("goldwire-presence"), timeout=15)
    finally:
        gateway.terminate()
        presence.terminate()
    gateway_spans = collector.names("goldwire-gateway")
    assert "POST /v1/publish" in gateway_spans
    assert not [n for n in gateway_spans if "readyz" in n]
    (publish,) = [a for svc, n, a in collector.spans
                  if svc == "goldwire-gateway" and n == "goldwire.publish"]
    assert publish["goldwire.room"] == "doc:1" and publish["goldwire.offset"] == offset
    assert publish["goldwire.duplicate"] is False and "goldwire.user" not in publish
    assert any("/v1/presence" in n for n in collector.names("goldwire-presence"))


def test_off_by_default_without_loading_the_sdk() -> None:
    code = ("import os, sys; os.environ.pop('OTEL_EXPORTER_OTLP_ENDPOINT', None);"
            "from goldwire.gateway.settings import GatewaySettings;"
            "from goldwire.gateway.server import build_server;"
            "build_server(GatewaySettings());"
            "from goldwire.service import tracing;"
            "assert tracing.span('x').__enter__() is None;"
            "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk',"
            " 'opentelemetry.exporter', 'opentelemetry.instrumentation'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "[]"


def test_an_endpoint_without_the_packages_is_a_warning(tmp_path: Any) -> None:
    # The SDK hidden: its import fails as it would without the extra (opentelemetry is a
    # namespace package, so this portion is searched first and the rest still imports).
    (tmp_path / "opentelemetry" / "sdk").mkdir(parents=True)
    (tmp_path / "opentelemetry" / "sdk" / "__init__.py").write_text(
        "raise ModuleNotFoundError('hidden', name='opentelemetry.sdk')\n")
    code = ("import logging; logging.basicConfig();"
            "from goldwire.service.tracing import setup_tracing;"
            "print(setup_tracing(object(), 'gateway', environ={"
            "'OTEL_EXPORTER_OTLP_ENDPOINT': 'http://127.0.0.1:9'}))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False" and "no traces" in run.stderr
