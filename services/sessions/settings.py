"""Sessions settings from the environment (empty counts as unset)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SessionsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = Field("gw", validation_alias="GOLDWIRE_KEY_PREFIX")
    sessions_host: str = "127.0.0.1"
    sessions_port: int = 8002
    api_keys: str = ""
    session_timeout_hours: float = 24.0
    notifications_max: int = 500  # per user inbox
    notifications_retention_days: float = 30
    idempotency_window: int = 300
    sessions_cleanup_interval: int = 30  # seconds between expired-session cleanups
    sessions_claim_idle: float = 10.0
    sessions_batch: int = 500
    dead_letter_maxlen: int = 10_000  # about this many failed records kept (<prefix>:events:dead)

    def api_key_set(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.api_keys.split(",") if k.strip())
