"""Gateway settings, read from the environment by name (protocol.md's names).

Settings are an object passed in, never read at import time, so tests build
their own. An empty variable counts as unset.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field, model_validator

from goldwire.gateway.clientip import parse_networks
from goldwire.protocol.room_options import RoomPolicy
from goldwire.service.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    """REDIS_URL, GOLDWIRE_KEY_PREFIX and API_KEYS come from ServiceSettings."""

    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    node_id: str = Field(default_factory=lambda: "gw-" + secrets.token_hex(4))

    websocket_heartbeat_interval: float = 30.0
    auth_timeout: float = 10.0
    http_request_timeout: float = 10.0  # seconds to receive a whole request or WS handshake

    jwt_secret: str | None = None
    jwt_public_key: str | None = None  # PEM text or a path to a PEM file
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_leeway: float = 30.0

    allowed_origins: str = ""  # comma-separated; empty allows any origin
    authz_url: str | None = None
    authz_cache_seconds: float = 30.0
    authz_timeout: float = 2.0

    # /v2/sync/*: the services the gateway forwards a user's requests to, with the
    # first of API_KEYS; a service that does not answer within sync_timeout is a 503.
    presence_url: str = "http://127.0.0.1:8001"
    sessions_url: str = "http://127.0.0.1:8002"
    activity_url: str = "http://127.0.0.1:8003"
    sync_timeout: float = 2.0  # seconds for one forwarded call, connect to last byte

    max_frame_bytes: int = 65536
    rate_limit_per_second: float = 50.0
    rate_limit_burst: int = 100
    flood_strikes: int = 20  # rejected frames in a row before close 4008
    max_rooms_per_connection: int = 100
    # Sockets per (tenant, user) over every gateway (0 = unlimited); past it: close 4029.
    max_connections_per_user: int = 100
    user_nodes_ttl: float = 3600.0  # seconds a user's per-node count outlives its refreshes
    # Connection attempts per client IP over every gateway (token bucket; 0 = off): 429.
    connect_rate_per_ip: float = 0.0
    connect_rate_burst: int = 20
    # Peers whose X-Forwarded-For is believed (comma-separated IPs or CIDRs).
    trusted_proxies: str = ""
    # HTTP publishes per tenant over every gateway (token bucket; 0 = off): 429.
    publish_rate_per_tenant: float = 0.0
    publish_rate_burst: int = 1000  # one full batch
    max_outbound_bytes: int = 1 << 20  # a socket with more unsent bytes is cut off (4009)
    # One message as delivered (the whole frame), from a socket or the HTTP API: below
    # max_outbound_bytes, so one message alone can never cut a room's members off.
    max_publish_bytes: int = 65536
    max_body_bytes: int = 1 << 20  # one HTTP request body (a batch holds many publishes)
    # Kernel send buffer per socket (0: the kernel's autotuned default, up to megabytes).
    # Bounding it keeps a stuck client's real backlog near max_outbound_bytes.
    socket_send_buffer: int = 262144
    per_message_deflate: bool = False

    history_size: int = 1000
    room_options: str = ""  # JSON rules by room pattern: presence, history_size (room_options.py)
    history_ttl: int = 86400  # seconds
    idempotency_window: int = 300  # seconds
    events_maxlen: int = 1_000_000
    node_ttl: float = 5.0  # seconds a dead node's liveness key outlives it
    drain_timeout: float = 10.0
    session_timeout_hours: float = 24.0  # sliding: every use of a session extends it
    notifications_max: int = 500  # per user inbox
    notifications_retention_days: float = 30

    @model_validator(mode="after")
    def _trusted_proxies_parse(self) -> GatewaySettings:
        parse_networks(self.trusted_proxies)  # a typo fails at start, not at the first connect
        return self

    @model_validator(mode="after")
    def _room_options_parse(self) -> GatewaySettings:
        RoomPolicy.parse(self.room_options)  # a bad rule fails at start, naming the rule
        return self

    def room_policy(self) -> RoomPolicy:
        return RoomPolicy.parse(self.room_options)

    @model_validator(mode="after")
    def _one_message_fits_a_socket(self) -> GatewaySettings:
        # Headroom for the frame's envelope and a few messages queued ahead of it.
        if self.max_publish_bytes * 2 > self.max_outbound_bytes:
            raise ValueError(
                f"MAX_PUBLISH_BYTES ({self.max_publish_bytes}) must be at most half of "
                f"MAX_OUTBOUND_BYTES ({self.max_outbound_bytes}), or one message could cut "
                "every member of a room off as a slow consumer")
        return self

    def origin_list(self) -> list[str]:
        return [o.strip() for o in self.allowed_origins.split(",") if o.strip()]

    def public_key_pem(self) -> str | None:
        key = self.jwt_public_key
        if key is None:
            return None
        if "-----BEGIN" in key:
            return key
        return Path(key).read_text()
