"""The gateway's Prometheus metrics: plain numbers on the hot path, families on scrape.

Counters are bumped on the fan-out path (per frame, per delivery), so they stay
bare attribute increments and dict bumps; `GatewayMetrics.collect` turns them into
prometheus_client families with HELP text when Prometheus scrapes. Histograms are
prometheus_client's own and are observed once per operation (a command, a room
message fanned out, a Redis round trip), never per socket. One registry per node:
see goldwire.service.metrics for why, and why nothing here is multi-process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any, get_args

from prometheus_client import Histogram
from prometheus_client.core import Metric

from goldwire.protocol.commands import COMMAND_TYPES
from goldwire.service.metrics import Metrics, counter, gauge

PREFIX = "goldwire_gateway"
# Every command's `op` (its Literal), so each op's histogram child exists from the start.
OPS = tuple(get_args(t.model_fields["op"].annotation)[0] for t in COMMAND_TYPES)
# Publish to socket: the room frame's ts has millisecond precision.
DELIVERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0)


def _count(help: str) -> Any:
    return field(default=0, metadata={"help": help})


def _seconds(help: str) -> Any:
    return field(default=0.0, metadata={"help": help})


@dataclass
class GatewayMetrics:
    connections_opened: int = _count("WebSocket connections accepted (101 sent)")
    connections_closed: int = _count("WebSocket connections ended, by close code (1006: "
                                     "aborted, no close frame)")
    messages_in: int = _count("Frames received from clients")
    messages_out: int = _count("Frames written to sockets (fan-out deliveries and replies)")
    room_messages: int = _count("Room messages received from Redis pub/sub and fanned out")
    slow_consumers_dropped: int = _count("Sockets cut off for unread output over "
                                         "MAX_OUTBOUND_BYTES (close 4009)")
    rate_limited: int = _count("Client frames over the per-connection rate limit")
    connections_refused_per_user: int = _count("Connections refused over "
                                               "MAX_CONNECTIONS_PER_USER (close 4029)")
    connects_rate_limited: int = _count("Upgrades refused over CONNECT_RATE_PER_IP (HTTP 429)")
    publishes_rate_limited: int = _count("Publishes refused over PUBLISH_RATE_PER_TENANT (429)")
    bad_frames: int = _count("Client frames that did not parse as a command")
    heartbeat_timeouts: int = _count("Sockets aborted for not answering a ping in time")
    http_request_timeouts: int = _count("HTTP connections that sent no whole request in time")
    tokens_expired: int = _count("Connections closed because the token ran out (close 4001)")
    tokens_refreshed: int = _count("Successful refresh commands")
    publishes: int = _count("Room publishes accepted (socket and HTTP)")
    pubsub_reconnects: int = _count("Reconnects of the node's Redis pub/sub feed")
    events_emitted: int = _count("Events queued for the event stream")
    events_dropped: int = _count("Events dropped (outbox full or Redis down too long)")
    outbox_refused: int = _count("Outbox writes (events, bookkeeping) Redis refused for good, "
                                 "e.g. WRONGTYPE; each is logged")
    liveness_lapses: int = _count("Times this node found its liveness key lapsed "
                                  "(every connection closed with 4012)")
    redis_latency_seconds: float = _seconds("The latest liveness pipeline round trip to Redis")
    # How late the event loop ran a timer: every frame waits at least this long.
    event_loop_lag_seconds: float = _seconds("How late the event loop ran a timer, latest probe")
    event_loop_lag_max_seconds: float = _seconds("How late the event loop ran a timer, worst "
                                                 "since the process started")
    commands: dict[str, int] = field(default_factory=dict)  # op -> parsed commands
    closes: dict[int, int] = field(default_factory=dict)  # close code -> connections
    published: dict[tuple[str, str], int] = field(default_factory=dict)  # (to, type) -> n
    _gauges: dict[str, tuple[str, Callable[[], float]]] = field(default_factory=dict,
                                                                repr=False)

    def __post_init__(self) -> None:
        self.registry = Metrics(PREFIX)
        command = self.registry.histogram(
            "command_seconds", "Time to run one client command, by op (reply written)",
            labels=("op",))
        self.command_seconds: dict[str, Histogram] = {op: command.labels(op) for op in OPS}
        self.publish_to_socket = self.registry.histogram(
            "publish_to_socket_seconds", "From a room message's ts (Redis time at publish) "
            "to this gateway writing it to its local sockets; once per message per gateway",
            buckets=DELIVERY_BUCKETS)
        self.redis_seconds = self.registry.histogram(
            "redis_seconds", "Round trip of the liveness pipeline to Redis")
        self.registry.families(self.collect)

    def gauge(self, name: str, read: Callable[[], float], help: str) -> None:
        """Register a gauge read at scrape time."""
        self._gauges[name] = (help, read)

    def command(self, op: str) -> None:
        self.commands[op] = self.commands.get(op, 0) + 1

    def publish(self, to: str, type_: str) -> None:
        """A message sent by this gateway (socket or HTTP) to a room, user or tenant;
        `type_` is a MessageType value, so the label set stays small."""
        key = (to, type_)
        self.published[key] = self.published.get(key, 0) + 1

    def closed(self, code: int) -> None:
        self.connections_closed += 1
        self.closes[code] = self.closes.get(code, 0) + 1

    def render(self) -> bytes:
        return self.registry.render()

    def collect(self) -> Iterable[Metric]:
        for f in fields(self):
            help = f.metadata.get("help")
            if help is None:
                continue
            value = getattr(self, f.name)
            if f.name == "connections_closed":
                yield counter(f"{PREFIX}_connections_closed_total", help, labels=("code",),
                              samples={(str(c),): n for c, n in sorted(self.closes.items())})
            elif f.name.endswith("seconds"):
                yield gauge(f"{PREFIX}_{f.name}", help, value)
            else:
                yield counter(f"{PREFIX}_{f.name}_total", help, value)
        yield counter(f"{PREFIX}_commands_total", "Client commands parsed, by op",
                      labels=("op",), samples={(op,): n for op, n in sorted(self.commands.items())})
        yield counter(f"{PREFIX}_messages_published_total", "Messages this gateway published "
                      "(socket or HTTP), by target (room, user, tenant) and message type",
                      labels=("to", "type"), samples=dict(sorted(self.published.items())))
        for name, (help, read) in self._gauges.items():
            yield gauge(f"{PREFIX}_{name}", help, read())
