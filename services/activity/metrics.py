"""The activity service's /metrics: its stats, read at scrape time."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import Metric

from goldwire.service.metrics import Metrics, consumer_families

if TYPE_CHECKING:
    from goldwire.activity.service import ActivityService

PREFIX = "goldwire_activity"

HELP = {
    "events_seen_total": "Event stream entries read",
    "events_recorded_total": "Events recorded into activity logs and counters",
    "events_duplicate_total": "Events already recorded (a redelivery), not counted twice",
    "events_too_old_total": "Events older than the retention, not recorded",
    "events_replayed_total": "Connect/join events a gateway re-announced after a Redis gap "
                             "(live state only)",
    "events_skipped_total": "Malformed events skipped",
    "rollups_total": "Minute rollup job runs",
    "rolled_up_counters_total": "Minute counters folded into hour and day rollups",
    "trims_total": "Activity log trim job runs",
    "trimmed_entries_total": "Activity log entries removed by trims",
    "swept_connections_total": "Connections of dead gateways removed from live counts",
    "stats_pushed_total": "Live stats messages published to the stats room",
    "job_runner_restarts_total": "arq worker restarts after a crash",
    "job_records_skipped_total": "Records a job failed on (bad data), logged and skipped",
}


def activity_metrics(service: ActivityService) -> Metrics:
    metrics = Metrics(PREFIX)

    def collect() -> Iterable[Metric]:
        yield from consumer_families(PREFIX, HELP, service.stats, service.consumer)

    metrics.families(collect)
    return metrics
