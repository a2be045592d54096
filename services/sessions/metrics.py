"""The sessions service's /metrics: its stats, read at scrape time."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import Metric

from goldwire.service.metrics import Metrics, stats_families, stream_group_families

if TYPE_CHECKING:
    from goldwire.sessions.service import SessionsService

PREFIX = "goldwire_sessions"

HELP = {
    "events_handled_total": "Join, leave and disconnect events written to sessions",
    "events_skipped_total": "Malformed session events skipped",
    "sessions_expired_total": "Sessions removed by the cleanup job after SESSION_TIMEOUT_HOURS",
    "job_runner_restarts_total": "arq worker restarts after a crash",
    "stream_claimed_total": "Event stream entries claimed from dead consumers (XAUTOCLAIM)",
    "stream_failures_total": "Event stream batches whose handling failed",
    "stream_dead_letters_total": "Event stream entries set aside in the dead-letter stream",
}


def sessions_metrics(service: SessionsService) -> Metrics:
    metrics = Metrics(PREFIX)

    def collect() -> Iterable[Metric]:
        st, stats = service.consumer.stats, service.stats
        values: dict[str, float] = {name: stats[name.removesuffix("_total")] for name in HELP
                                    if not name.startswith("stream_")}
        values.update(stream_claimed_total=st.claimed, stream_failures_total=st.failures,
                      stream_dead_letters_total=st.dead_lettered)
        yield from stats_families(PREFIX, values, HELP)
        yield from stream_group_families(PREFIX, service.consumer.group, st.lag, st.pending)

    metrics.families(collect)
    return metrics
