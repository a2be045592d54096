"""Activity settings from the environment (empty counts as unset)."""

from __future__ import annotations

from pydantic import Field

from goldwire.service.settings import ServiceSettings


class ActivitySettings(ServiceSettings):
    """REDIS_URL, GOLDWIRE_KEY_PREFIX and API_KEYS come from ServiceSettings."""

    activity_host: str = "127.0.0.1"
    activity_port: int = 8003

    # History (per user, per room) is kept this long, by event time; fractions allowed.
    activity_retention_days: float = Field(30.0, gt=0)
    activity_rollup_days: int = 400  # hour roll-ups live retention + 2 days; day roll-ups this long
    activity_minute_ttl: int = 2 * 86400  # seconds minute counters stay queryable
    activity_exact_users: int = 10_000  # above this, distinct users per hour/day are HLL only
    activity_batch: int = 1000  # XREADGROUP COUNT
    activity_read_linger_ms: int = Field(50, ge=0, le=5000)  # see PRESENCE_READ_LINGER_MS
    dead_letter_maxlen: int = 10_000  # about this many failed records kept (<prefix>:events:dead)
    activity_script_chunk: int = 500  # events per Lua call (bounds how long Redis is busy)
    activity_claim_idle: float = 10.0  # seconds before a dead replica's events are claimed
    activity_rollup_interval: int = 5  # seconds between roll-ups (minute -> hour -> day)
    activity_trim_minutes: int = 60  # minutes between retention trims
    activity_sweep_interval: int = 5  # seconds between dead-gateway sweeps (0 = never)
    activity_stats_room: str = "system:stats"
    activity_stats_history: int = 120  # entries kept in the stats room's history
    activity_ready_max_lag: int = 200_000  # /readyz fails above this many unread events
    activity_tombstone_ttl: int = 86400  # seconds a connection's record outlives its disconnect

    @property
    def retention_ms(self) -> int:
        return int(self.activity_retention_days * 86_400_000)

    @property
    def hour_keys_ttl(self) -> int:
        """Seconds hour roll-ups and hourly user sets live: the retention plus 2 days."""
        return self.retention_ms // 1000 + 2 * 86400

    @property
    def day_keys_ttl(self) -> int:
        """Seconds day roll-ups live."""
        return self.activity_rollup_days * 86400
