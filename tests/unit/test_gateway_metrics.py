"""The gateway's metrics render through prometheus_client: every family documented,
closes by code, one registry per node (two nodes in one process do not clash)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from goldwire.gateway.metrics import OPS, GatewayMetrics


def families(metrics: GatewayMetrics) -> dict:
    return {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}


def test_every_family_has_help_and_closes_are_counted_by_code() -> None:
    metrics = GatewayMetrics()
    metrics.gauge("connections", lambda: 7, "Open client connections on this node")
    for code in (1000, 4009, 4009, 1006):
        metrics.closed(code)
    found = families(metrics)
    assert all(f.documentation for f in found.values()), [n for n, f in found.items()
                                                          if not f.documentation]
    closed = {s.labels["code"]: s.value for s in found["goldwire_gateway_connections_closed"]
              .samples}
    assert closed == {"1000": 1, "1006": 1, "4009": 2}
    assert metrics.connections_closed == 4
    assert found["goldwire_gateway_connections"].samples[0].value == 7
    assert found["goldwire_gateway_messages_out"].type == "counter"
    assert found["goldwire_gateway_redis_latency_seconds"].type == "gauge"


def test_each_node_has_its_own_registry() -> None:
    first, second = GatewayMetrics(), GatewayMetrics()
    first.command("join")
    first.command_seconds["join"].observe(0.01)
    assert set(first.command_seconds) == set(OPS)
    count = "goldwire_gateway_command_seconds_count"

    def joins(m: GatewayMetrics) -> float:
        return next(s.value for s in families(m)["goldwire_gateway_command_seconds"].samples
                    if s.name == count and s.labels["op"] == "join")

    assert (joins(first), joins(second)) == (1, 0)
