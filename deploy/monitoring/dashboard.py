"""Writes deploy/monitoring/grafana-dashboard.json, the Goldwire dashboard for Grafana
(import it, pick the Prometheus data source). Kept as code so every panel is one line
to read or change:

    python deploy/monitoring/dashboard.py > deploy/monitoring/grafana-dashboard.json

tests/system/test_monitoring.py regenerates it (the checked-in file must be current)
and checks every metric a panel or alert names is one a real process serves.
"""

from __future__ import annotations

import json
import sys
from typing import Any

# (title, unit, [(PromQL, legend)]) per panel, in rows of two
PANELS: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("Connections", "short", [
        ("sum by (instance) (goldwire_gateway_connections)", "{{instance}}")]),
    ("Connects and closes per second", "ops", [
        ("sum(rate(goldwire_gateway_connections_opened_total[1m]))", "opened"),
        ("sum by (code) (rate(goldwire_gateway_connections_closed_total[1m]))",
         "closed {{code}}")]),
    ("Messages published per second, by target and type", "ops", [
        ("sum by (to, type) (rate(goldwire_gateway_messages_published_total[1m]))",
         "{{to}} {{type}}")]),
    ("Deliveries per second (frames written)", "ops", [
        ("sum by (instance) (rate(goldwire_gateway_messages_out_total[1m]))", "{{instance}}")]),
    ("Publish to socket, p50 / p99", "s", [
        ("histogram_quantile(0.5, sum by (le) "
         "(rate(goldwire_gateway_publish_to_socket_seconds_bucket[5m])))", "p50"),
        ("histogram_quantile(0.99, sum by (le) "
         "(rate(goldwire_gateway_publish_to_socket_seconds_bucket[5m])))", "p99")]),
    ("Command latency p99 by op", "s", [
        ("histogram_quantile(0.99, sum by (le, op) "
         "(rate(goldwire_gateway_command_seconds_bucket[5m])))", "{{op}}")]),
    ("Commands per second by op", "ops", [
        ("sum by (op) (rate(goldwire_gateway_commands_total[1m]))", "{{op}}")]),
    ("Redis round trip p99 (gateway liveness)", "s", [
        ("histogram_quantile(0.99, sum by (le, instance) "
         "(rate(goldwire_gateway_redis_seconds_bucket[5m])))", "{{instance}}")]),
    ("Event loop lag", "s", [
        ("max by (instance) (goldwire_gateway_event_loop_lag_seconds)", "{{instance}}")]),
    ("Event stream lag per consumer group", "short", [
        ("max by (group) (goldwire_presence_stream_lag)", "presence {{group}}"),
        ("max by (group) (goldwire_sessions_stream_lag)", "sessions {{group}}"),
        ("max by (group) (goldwire_activity_stream_lag)", "activity {{group}}")]),
    ("Event stream pending (read, not acknowledged)", "short", [
        ("max by (group) (goldwire_presence_stream_pending)", "presence"),
        ("max by (group) (goldwire_sessions_stream_pending)", "sessions"),
        ("max by (group) (goldwire_activity_stream_pending)", "activity")]),
    ("Presence join to diff, p50 / p99", "s", [
        ("histogram_quantile(0.5, sum by (le) "
         "(rate(goldwire_presence_join_to_diff_seconds_bucket[5m])))", "p50"),
        ("histogram_quantile(0.99, sum by (le) "
         "(rate(goldwire_presence_join_to_diff_seconds_bucket[5m])))", "p99")]),
    ("Dead-gateway sweeps and ghosts removed", "short", [
        ("sum(increase(goldwire_presence_sweeps_total[5m]))", "sweeps / 5 min"),
        ("sum(increase(goldwire_presence_ghosts_removed_total[5m]))", "ghosts / 5 min")]),
    ("Slow consumers cut, rate limits", "ops", [
        ("sum(rate(goldwire_gateway_slow_consumers_dropped_total[5m]))", "slow (4009)"),
        ("sum(rate(goldwire_gateway_rate_limited_total[5m]))", "frames over the limit"),
        ("sum(rate(goldwire_gateway_connects_rate_limited_total[5m]))", "connects 429")]),
    ("Redis trouble at the gateways", "short", [
        ("sum(increase(goldwire_gateway_pubsub_reconnects_total[5m]))", "pub/sub reconnects"),
        ("sum(increase(goldwire_gateway_events_dropped_total[5m]))", "events dropped"),
        ("sum(increase(goldwire_gateway_liveness_lapses_total[5m]))", "liveness lapses")]),
]


def panel(n: int, title: str, unit: str, targets: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "id": n + 1, "type": "timeseries", "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": 12 * (n % 2), "y": 8 * (n // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [{"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend,
                     "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                    for i, (expr, legend) in enumerate(targets)],
    }


def dashboard() -> dict[str, Any]:
    return {
        "uid": "goldwire", "title": "Goldwire", "tags": ["goldwire"], "editable": True,
        "schemaVersion": 39, "version": 1, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource",
                                 "query": "prometheus", "label": "Prometheus"}]},
        "panels": [panel(n, *p) for n, p in enumerate(PANELS)],
    }


def expressions() -> list[str]:
    return [expr for _, _, targets in PANELS for expr, _ in targets]


if __name__ == "__main__":
    json.dump(dashboard(), sys.stdout, indent=2)
    sys.stdout.write("\n")
