"""Prometheus metrics as plain numbers, rendered on scrape.

Counters are bumped on the fan-out path, so they are bare attribute
increments rather than a client library's locked counters.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass
class GatewayMetrics:
    connections_opened: int = 0
    connections_closed: int = 0
    messages_in: int = 0  # frames received from clients
    messages_out: int = 0  # frames written to sockets
    room_messages: int = 0  # room messages received from Redis pub/sub
    slow_consumers_dropped: int = 0
    rate_limited: int = 0
    connections_refused_per_user: int = 0  # MAX_CONNECTIONS_PER_USER (close 4029)
    connects_rate_limited: int = 0  # CONNECT_RATE_PER_IP (429 on the upgrade)
    publishes_rate_limited: int = 0  # PUBLISH_RATE_PER_TENANT (429)
    bad_frames: int = 0
    heartbeat_timeouts: int = 0
    http_request_timeouts: int = 0  # connections that sent no whole request in time
    tokens_expired: int = 0  # connections closed because the token ran out
    tokens_refreshed: int = 0
    publishes: int = 0
    pubsub_reconnects: int = 0
    events_emitted: int = 0
    events_dropped: int = 0
    liveness_lapses: int = 0
    redis_latency_seconds: float = 0.0
    # How late the event loop ran a timer: every frame waits at least this long.
    event_loop_lag_seconds: float = 0.0  # the latest probe
    event_loop_lag_max_seconds: float = 0.0  # the worst since the process started
    _gauges: dict[str, object] = field(default_factory=dict, repr=False)

    def gauge(self, name: str, read: object) -> None:
        """Register a gauge read at scrape time (`read` is a no-arg callable)."""
        self._gauges[name] = read

    def render(self) -> str:
        lines = []
        for f in fields(self):
            if f.name.startswith("_"):
                continue
            value = getattr(self, f.name)
            kind = "gauge" if f.name.endswith("seconds") else "counter"
            name = f"goldwire_gateway_{f.name}" + ("_total" if kind == "counter" else "")
            lines += [f"# TYPE {name} {kind}", f"{name} {value}"]
        for name, read in self._gauges.items():
            full = f"goldwire_gateway_{name}"
            lines += [f"# TYPE {full} gauge", f"{full} {read()}"]  # type: ignore[operator]
        return "\n".join(lines) + "\n"
