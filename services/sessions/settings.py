"""Sessions settings from the environment (empty counts as unset)."""

from __future__ import annotations

from pydantic import Field

from goldwire.service.settings import ServiceSettings


class SessionsSettings(ServiceSettings):
    """REDIS_URL, GOLDWIRE_KEY_PREFIX and API_KEYS come from ServiceSettings."""

    sessions_host: str = "127.0.0.1"
    sessions_port: int = 8002
    session_timeout_hours: float = 24.0
    notifications_max: int = 500  # per user inbox
    notifications_retention_days: float = 30
    idempotency_window: int = 300
    sessions_cleanup_interval: int = 30  # seconds between expired-session cleanups
    sessions_claim_idle: float = 10.0
    sessions_batch: int = 500
    sessions_read_linger_ms: int = Field(20, ge=0, le=5000)  # see PRESENCE_READ_LINGER_MS
    dead_letter_maxlen: int = 10_000  # about this many failed records kept (<prefix>:events:dead)

