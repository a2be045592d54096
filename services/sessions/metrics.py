"""The sessions service's /metrics: its stats, read at scrape time."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import Metric

from goldwire.service.metrics import Metrics, consumer_families

if TYPE_CHECKING:
    from goldwire.sessions.service import SessionsService

PREFIX = "goldwire_sessions"

HELP = {
    "events_handled_total": "Join, leave and disconnect events written to sessions",
    "events_skipped_total": "Malformed session events skipped",
    "sessions_expired_total": "Sessions removed by the cleanup job after SESSION_TIMEOUT_HOURS",
    "job_runner_restarts_total": "arq worker restarts after a crash",
}


def sessions_metrics(service: SessionsService) -> Metrics:
    metrics = Metrics(PREFIX)

    def collect() -> Iterable[Metric]:
        yield from consumer_families(PREFIX, HELP, service.stats, service.consumer)

    metrics.families(collect)
    return metrics
