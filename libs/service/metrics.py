"""Prometheus metrics for every Goldwire process, built on prometheus_client.

Each process (each app, so tests can build several in one interpreter) has its own
`Metrics`: a `CollectorRegistry` that is never the library's global default. Hot-path
counts stay plain numbers (a `Counter` of stats, int attributes) and a `Collector`
turns them into families with HELP text only when Prometheus scrapes; only
histograms, observed once per operation, use prometheus_client's own objects.

Not multi-process: no Goldwire process forks (uvicorn runs one worker, arq runs
inside the service's own event loop), so every process serves its own `/metrics`
and Prometheus sums over them. PROMETHEUS_MULTIPROC_DIR is not needed: unset (the
normal case) prometheus_client keeps values in memory; set, it keeps the histograms'
values in files there and each process's /metrics still reports its own (checked by
hand). A deployment that ever runs several uvicorn workers per process must switch to
prometheus_client's multiprocess collector or give each worker its own port.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

__all__ = ["CONTENT_TYPE_LATEST", "LATENCY_BUCKETS", "Metrics", "consumer_families", "counter",
           "gauge", "stats_families", "stream_group_families"]

# Seconds, from a local Redis round trip (under a millisecond) to a stalled process.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)


class _Families:
    """A prometheus_client Collector around a function that yields metric families."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        return self._collect()


class Metrics:
    """One process's registry: histograms plus families read at scrape time."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix  # e.g. goldwire_presence
        # Not auto_describe: that collects at register time, before the service the
        # families read is fully built. Names are checked by tests/system instead.
        self.registry = CollectorRegistry()

    def histogram(self, name: str, help: str, labels: Sequence[str] = (),
                  buckets: Sequence[float] = LATENCY_BUCKETS) -> Histogram:
        return Histogram(f"{self.prefix}_{name}", help, labelnames=labels, buckets=buckets,
                         registry=self.registry)

    def families(self, collect: Callable[[], Iterable[Metric]]) -> None:
        """Register `collect`, called on every scrape for the families it yields."""
        self.registry.register(_Families(collect))

    def render(self) -> bytes:
        """The text exposition format (serve with CONTENT_TYPE_LATEST)."""
        return generate_latest(self.registry)


def counter(name: str, help: str, value: float | None = None,
            labels: Sequence[str] = (), samples: Mapping[tuple[str, ...], float] | None = None,
            ) -> CounterMetricFamily:
    """A counter family: one `value`, or one sample per label tuple in `samples`."""
    family = CounterMetricFamily(name, help, value=value, labels=labels or None)
    for values, count in (samples or {}).items():
        family.add_metric(values, count)
    return family


def gauge(name: str, help: str, value: float | None = None,
          labels: Sequence[str] = (), samples: Mapping[tuple[str, ...], float] | None = None,
          ) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help, value=value, labels=labels or None)
    for values, number in (samples or {}).items():
        family.add_metric(values, number)
    return family


def stats_families(prefix: str, values: Mapping[str, float],
                   helps: Mapping[str, str]) -> Iterable[Metric]:
    """`name_total` values as counters, the rest as gauges, each with its HELP from
    `helps` (a missing one is a KeyError: every family is documented)."""
    for name, value in values.items():
        make = counter if name.endswith("_total") else gauge
        yield make(f"{prefix}_{name}", helps[name], value)


def stream_group_families(prefix: str, group: str, lag: int, pending: int) -> Iterable[Metric]:
    """The consumer group's lag (entries not yet delivered to it) and pending entries
    (delivered, not yet acknowledged), as XINFO GROUPS last reported them."""
    yield gauge(f"{prefix}_stream_lag", "Event stream entries not yet read by this "
                "service's consumer group (XINFO GROUPS lag)", labels=("group",),
                samples={(group,): lag})
    yield gauge(f"{prefix}_stream_pending", "Event stream entries read by this service's "
                "consumer group and not yet acknowledged (XINFO GROUPS pending)",
                labels=("group",), samples={(group,): pending})


# The stream consumer's own counts, the same in every service.
STREAM_HELP = {
    "stream_claimed_total": "Event stream entries claimed from dead consumers (XAUTOCLAIM)",
    "stream_failures_total": "Event stream batches whose handling failed",
    "stream_dead_letters_total": "Event stream entries set aside in the dead-letter stream",
}


def consumer_families(prefix: str, helps: Mapping[str, str], stats: Mapping[str, float],
                      consumer: Any) -> Iterable[Metric]:
    """A stream-consuming service's families: each stat named in `helps` (`name_total`
    reads `stats[name]`), the consumer's claims, failures and dead letters, and its
    group's lag and pending."""
    st = consumer.stats
    values = {name: stats[name.removesuffix("_total")] for name in helps}
    values.update(stream_claimed_total=st.claimed, stream_failures_total=st.failures,
                  stream_dead_letters_total=st.dead_lettered)
    yield from stats_families(prefix, values, {**helps, **STREAM_HELP})
    yield from stream_group_families(prefix, consumer.group, st.lag, st.pending)
