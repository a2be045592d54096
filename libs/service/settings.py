"""The settings every Goldwire process reads the same way: Redis, the key prefix, API keys.

Each process's settings class subclasses `ServiceSettings` and adds its own
fields; environment names and defaults are the same as before the base existed
(protocol.md and the README name them). An empty variable counts as unset.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from goldwire.protocol.partitions import MAX_EVENT_PARTITIONS


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    # arq's Redis (a plain one: arq's keys carry no hash tag and it uses multi-key
    # transactions, so it cannot run on a Redis Cluster); unset, the jobs share REDIS_URL.
    jobs_redis_url: str | None = None
    key_prefix: str = Field("gw", validation_alias="GOLDWIRE_KEY_PREFIX")
    api_keys: str = ""  # comma-separated
    # Streams per family the gateway's events are spread over (goldwire.protocol.
    # partitions); unset: the deployment's, else 16 on a Redis Cluster and 1 on one Redis.
    # Every gateway and service of a deployment agrees (goldwire.store.partitions).
    event_partitions: int | None = Field(None, ge=1, le=MAX_EVENT_PARTITIONS)

    @property
    def jobs_url(self) -> str:
        """Where this process's arq jobs live: JOBS_REDIS_URL, else REDIS_URL."""
        return self.jobs_redis_url or self.redis_url

    def api_key_list(self) -> list[str]:
        """API_KEYS in the order given; the first is the one the gateway calls services with."""
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]

    def api_key_set(self) -> frozenset[str]:
        return frozenset(self.api_key_list())
