"""Presence settings from the environment (empty counts as unset)."""

from __future__ import annotations

from pydantic import Field

from goldwire.service.settings import ServiceSettings


class PresenceSettings(ServiceSettings):
    """REDIS_URL, GOLDWIRE_KEY_PREFIX and API_KEYS come from ServiceSettings."""

    presence_host: str = "127.0.0.1"
    presence_port: int = 8001

    presence_leave_grace: float = 5.0  # seconds a leave waits for the same user to come back
    presence_sweep_interval: int = 2  # seconds between dead-gateway sweeps
    presence_claim_idle: float = 10.0  # seconds before a dead consumer's entries are claimed
    presence_batch: int = 500
    # ms a reader waits after a read that was not full (goldwire.streams.consumer): a
    # join's diff waits at most this, and batches gather under load
    presence_read_linger_ms: int = Field(5, ge=0, le=1000)
    dead_letter_maxlen: int = 10_000  # about this many failed records kept (<prefix>:events:dead)
    # Diff pacing (pacing.py): a room's diffs may cost about this many frame writes per
    # second (0 turns pacing off); a paced room waits at most the interval below.
    # 30,000 (33 ms between diffs of a 1,000-member room): on this 2-core machine under
    # a contended host, join-to-diff p99 38-46 ms, against 46-64 ms at 50,000.
    presence_diff_budget: float = 30_000
    presence_diff_max_interval: float = 0.05  # seconds
    presence_events_maxlen: int = 100_000
    presence_ready_max_lag: int = 10_000  # /readyz fails above this many unread events
    presence_webhook_url: str | None = None
    presence_webhook_secret: str = ""
    presence_webhook_tries: int = 8
    tombstone_ttl: int = 3600  # seconds a leave/disconnect tombstone is kept

    def config_error(self) -> str | None:
        """Why this configuration must not run, or None. A webhook without a secret
        would be unsigned in effect (anyone could forge its deliveries)."""
        if self.presence_webhook_url and not self.presence_webhook_secret.strip():
            return "PRESENCE_WEBHOOK_URL is set but PRESENCE_WEBHOOK_SECRET is empty"
        return None

