"""The presence service's /metrics: its stats read at scrape time, two histograms."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import Metric

from goldwire.service.metrics import Metrics, consumer_families, counter

if TYPE_CHECKING:
    from goldwire.presence.service import PresenceService

PREFIX = "goldwire_presence"

HELP = {
    "events_handled_total": "Gateway events applied to presence state",
    "changes_published_total": "Presence changes (online/offline, room join/leave) sent "
                               "to the presence events stream and webhooks",
    "sweeps_total": "Dead-gateway sweeps run (one per cron tick)",
    "ghosts_removed_total": "Connections of dead gateways removed by the sweep",
    "paced_flushes_total": "Room diffs the pacer held back and flushed later",
    "events_skipped_total": "Events the presence scripts refused, skipped one by one",
    "job_runner_restarts_total": "arq worker restarts after a crash",
    "webhooks_delivered_total": "Presence webhooks answered with a 2xx",
    "webhook_failures_total": "Presence webhook attempts that failed (retried by arq)",
}

# Join-to-diff includes the batch wait and the pacing budget: up to seconds on purpose.
DIFF_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
WEBHOOK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class PresenceMetrics:
    """The registry, the histograms the service observes, and its stats as families."""

    def __init__(self, service: PresenceService) -> None:
        self.service = service
        self.metrics = Metrics(PREFIX)
        self.join_to_diff = self.metrics.histogram(
            "join_to_diff_seconds", "From a presence event's ts (gateway time) to the flush "
            "that published its room's diff; one observation per flushed room per batch "
            "(diffs the pacer holds back are not observed)", buckets=DIFF_BUCKETS)
        webhook = self.metrics.histogram(
            "webhook_seconds", "Time of one presence webhook POST, by outcome",
            labels=("outcome",), buckets=WEBHOOK_BUCKETS)
        self.webhook_ok, self.webhook_failed = webhook.labels("ok"), webhook.labels("failed")
        self.metrics.families(self.collect)

    def render(self) -> bytes:
        return self.metrics.render()

    def collect(self) -> Iterable[Metric]:
        service = self.service
        yield from consumer_families(PREFIX, HELP, service.stats, service.consumer)
        yield counter(f"{PREFIX}_events_total", "Gateway events applied, by kind (presence "
                      "kinds only)", labels=("kind",),
                      samples={(kind,): n for kind, n in sorted(service.kinds.items())})
