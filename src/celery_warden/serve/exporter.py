"""The Prometheus exporter: ``/metrics`` rendered from the store at each scrape.

Why no ``Counter``/``Histogram`` objects: a process-global counter starts at zero whenever
``warden serve`` restarts and differs between replicas behind a load balancer. Every value here
is read at scrape time from what the fleet wrote to Redis — the cumulative task totals (no TTL,
counted once per event by the flush script; written as text by
:mod:`celery_warden.serve.totals_text`, ~120,000 samples being too many for prometheus_client's
``Sample`` objects), and, through a custom collector (prometheus/client_python's pattern), the
worker heartbeats, the broker's queue depths, the DLQ, the breakers, deferrals, drops and the
alert states — so every replica answers the same numbers and a counter never goes down. Names
and labels are celery-exporter's; see ``docs/metrics.md``.

A source that cannot be read (broker down, say) does not fail the scrape: its families are left
out and ``warden_exporter_source_up{source}`` says which one is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from celery_warden.read.warden_metrics import BREAKER_STATES, BreakerValue
from celery_warden.record.totals import host
from celery_warden.serve.export_sources import ExportSources

logger = logging.getLogger("celery_warden.serve.exporter")


def worker_families(workers: list[dict[str, Any]]) -> Iterator[Metric]:
    """``celery_worker_up`` and ``celery_worker_tasks_active`` per host (several nodes on one
    host: up if any is, active tasks summed)."""
    up: dict[str, int] = {}
    active: dict[str, int] = {}
    for w in workers:
        node = host(w.get("hostname"))  # the same host part as the task counters' label
        online = w.get("status") == "online"
        up[node] = max(up.get(node, 0), int(online))
        active[node] = active.get(node, 0) + (int(w.get("active") or 0) if online else 0)
    g_up = GaugeMetricFamily("celery_worker_up",
                             "Indicates if a worker has recently sent a heartbeat.",
                             labels=["hostname"])
    g_active = GaugeMetricFamily("celery_worker_tasks_active",
                                 "The number of tasks the worker is currently processing",
                                 labels=["hostname"])
    for node in sorted(up):
        g_up.add_metric([node], up[node])
        g_active.add_metric([node], active[node])
    yield g_up
    yield g_active


def queue_families(depths: dict[str, int | None],
                   ages: dict[str, dict[str, Any]]) -> Iterator[Metric]:
    """``celery_queue_length`` and ``warden_queue_oldest_message_age_seconds`` (a queue whose
    value is unknown — not declared on RabbitMQ, age not measurable — has no series)."""
    length = GaugeMetricFamily("celery_queue_length", "The number of message in broker queue.",
                               labels=["queue_name"])
    for name, depth in sorted(depths.items()):
        if depth is not None:
            length.add_metric([name], depth)
    yield length
    age = GaugeMetricFamily("warden_queue_oldest_message_age_seconds",
                            "Seconds the oldest message still waiting in the queue has waited "
                            "(Redis broker only; see docs/alerts.md).", labels=["queue_name"])
    for name, info in sorted(ages.items()):
        if info.get("age") is not None:
            age.add_metric([name], float(info["age"]))
    yield age


def dlq_family(by_reason: dict[str, int]) -> Metric:
    g = GaugeMetricFamily("warden_dlq_size", "Entries in the dead letter queue now, by reason.",
                          labels=["reason"])
    for reason, n in sorted(by_reason.items()):
        g.add_metric([reason], n)
    return g


def breaker_families(breakers: list[BreakerValue]) -> Iterator[Metric]:
    state = GaugeMetricFamily("warden_breaker_state",
                              "1 for the circuit breaker's current state, 0 for the others.",
                              labels=["name", "state"])
    trips = CounterMetricFamily("warden_breaker_trips",
                                "Transitions of the circuit breaker to open.", labels=["name"])
    for b in sorted(breakers, key=lambda b: b.name):
        for s in BREAKER_STATES:
            state.add_metric([b.name, s], int(b.state == s))
        trips.add_metric([b.name], b.trips)
    yield state
    yield trips


def alert_family(firing: list[dict[str, Any]]) -> Metric:
    g = GaugeMetricFamily("warden_alerts_firing",
                          "Alerts firing now per rule and severity (Warden's own evaluator).",
                          labels=["rule", "severity"])
    for row in firing:
        g.add_metric([str(row["alertname"]), str(row["severity"] or "")], int(row["count"]))
    return g


def scalar_counter(name: str, doc: str, value: int) -> Metric:
    return CounterMetricFamily(name, doc, value=float(value))


def labelled_counter(name: str, doc: str, label: str, values: dict[str, int]) -> Metric:
    c = CounterMetricFamily(name, doc, labels=[label])
    for key, n in sorted(values.items()):
        c.add_metric([key], n)
    return c


class StoreCollector(Collector):
    """Yields every family but the task ones from the store at each ``collect()``; keeps no
    state of its own. ``up``: what earlier parts of the same scrape found (source -> 0/1)."""

    def __init__(self, sources: ExportSources, up: dict[str, int] | None = None) -> None:
        self.sources = sources
        self.up = up

    def read(self) -> tuple[list[Metric], dict[str, int]]:
        """Every family but the source gauge, and which sources answered (source -> 0/1)."""
        s = self.sources
        up: dict[str, int] = {}
        out: list[Metric] = []

        def read(source: str, fn: Callable[[], Iterable[Metric]]) -> None:
            try:
                families = list(fn())
            except Exception as exc:  # one missing source never fails the scrape
                logger.warning("warden: /metrics could not read %s: %s: %s", source,
                               type(exc).__name__, exc)
                up[source] = 0
                return
            up.setdefault(source, 1)
            out.extend(families)

        read("store", lambda: worker_families(s.workers()))
        read("broker", lambda: queue_families(*s.queues()))
        read("store", lambda: [dlq_family(s.dlq_by_reason())])
        read("store", lambda: breaker_families(s.breakers()))
        read("store", lambda: [labelled_counter(
            "warden_deferrals", "Deliveries a guard re-scheduled without spending a retry, "
            "by reason.", "reason", s.deferrals())])
        read("store", lambda: [scalar_counter(
            "warden_recorder_dropped", "Records the recorders dropped because the store was "
            "unreachable longer than their buffers last.", s.recorder_dropped())])
        read("alerts", lambda: [alert_family(s.firing())])
        return out, up

    def collect(self) -> Iterator[Metric]:
        families, found = self.read()
        for source, ok in (self.up or {}).items():  # a source is up only if every read was
            found[source] = min(ok, found.get(source, ok))
        yield from families
        yield source_up_family(found)


def source_up_family(up: dict[str, int]) -> Metric:
    """``warden_exporter_source_up``: a source is up when every read of it answered."""
    g = GaugeMetricFamily("warden_exporter_source_up",
                          "1 when the exporter could read the source at this scrape.",
                          labels=["source"])
    for source in ("store", "broker", "alerts"):
        g.add_metric([source], up.get(source, 0))
    return g


class _Read(Collector):
    """Families already read (for :func:`generate_latest`)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def exposition(sources: ExportSources) -> bytes:
    """One scrape: the task families (:mod:`celery_warden.serve.totals_text`), then the
    collector's. Everything is read now; nothing is kept for the next scrape.

    The collector's sources (heartbeats, the broker's queues, the DLQ, ...: a dozen round
    trips, mostly waiting) are read in a helper thread while this one renders the task
    families, so their waits hide behind that work instead of adding to it."""
    collector = StoreCollector(sources)
    with ThreadPoolExecutor(1, thread_name_prefix="warden-metrics-sources") as pool:
        others = pool.submit(collector.read)
        try:
            head = sources.task_parts()
            store_up = 1
        except Exception as exc:  # the store is down: the other sources may still answer
            logger.warning("warden: /metrics could not read the task totals: %s: %s",
                           type(exc).__name__, exc)
            head, store_up = [], 0
        families, up = others.result()
    if not store_up:
        up["store"] = 0
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Read([*families, source_up_family(up)]))
    return b"".join([*head, generate_latest(registry)])  # the ~14 MB body built once


__all__ = ["StoreCollector", "exposition"]
