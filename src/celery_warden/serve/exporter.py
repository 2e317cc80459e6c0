"""The Prometheus exporter: a custom collector that renders ``/metrics`` from the store.

Why a collector and not ``Counter``/``Histogram`` objects: a process-global counter starts at
zero whenever ``warden serve`` restarts and differs between replicas behind a load balancer.
Every value here is read at scrape time from what the fleet wrote to Redis — the cumulative
totals (``read_totals``: no TTL, counted once per event by the flush script), the worker
heartbeats, the broker's queue depths, the DLQ, the breakers, the alert states — so every
replica answers the same numbers and a counter never goes down (prometheus/client_python's
"custom collector" pattern; the names and labels are celery-exporter's, see
``docs/metrics.md``).

A source that cannot be read (broker down, say) does not fail the scrape: its families are left
out and ``warden_exporter_source_up{source}`` says which one is missing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from celery_warden.read.totals import CounterTotal, HistogramTotal
from celery_warden.read.warden_metrics import BREAKER_STATES, BreakerValue
from celery_warden.record.totals import host
from celery_warden.serve.export_sources import ExportSources

logger = logging.getLogger("celery_warden.serve.exporter")

#: celery-exporter's counters: event -> help text (its own wording).
TASK_EVENTS: dict[str, str] = {
    "sent": "Sent when a task message is published.",
    "received": "Sent when the worker receives a task.",
    "started": "Sent just before the worker executes the task.",
    "succeeded": "Sent if the task executed successfully.",
    "failed": "Sent if the execution of the task failed.",
    "rejected": "The task was rejected by the worker, possibly to be re-queued or moved to a "
                "dead letter queue.",
    "revoked": "Sent if the task has been revoked.",
    "retried": "Sent if the task failed, but will be retried in the future.",
}
#: celery-exporter's histograms: Warden's metric -> (name, help).
HISTOGRAMS: dict[str, tuple[str, str]] = {
    "runtime": ("celery_task_runtime", "Histogram of task runtime measurements."),
    "queue_wait": ("celery_task_queue_wait_time",
                   "Histogram of the time tasks spend waiting in the queue before being "
                   "executed, excluding deliberate ETA/countdown delay."),
}
TASK_LABELS = ["name", "hostname", "queue_name"]


def le(bound: float) -> str:
    """A bucket bound as prometheus_client writes it (``0.025``, ``1.0``, ``+Inf``)."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def task_families(counters: Iterable[CounterTotal],
                  histograms: Iterable[HistogramTotal]) -> Iterator[Metric]:
    """``celery_task_*_total`` counters and the two ``celery_task_*`` histograms."""
    families = {
        event: CounterMetricFamily(
            f"celery_task_{event}", doc,
            labels=[*TASK_LABELS, "exception"] if event == "failed" else TASK_LABELS)
        for event, doc in TASK_EVENTS.items()
    }
    for c in counters:
        family = families.get(c.event)
        if family is None:
            continue
        labels = [c.name, c.hostname, c.queue]
        if c.event == "failed":
            labels.append(c.exception)
        family.add_metric(labels, float(c.value))
    yield from families.values()
    hists = {metric: HistogramMetricFamily(name, doc, labels=TASK_LABELS)
             for metric, (name, doc) in HISTOGRAMS.items()}
    for hist in histograms:
        h_family = hists.get(hist.metric)
        if h_family is None:
            continue
        h_family.add_metric([hist.name, hist.hostname, hist.queue],
                            [(le(bound), float(n)) for bound, n in hist.buckets],
                            sum_value=hist.sum)
    yield from hists.values()


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
    """Yields every family from the store at each ``collect()``; keeps no state of its own."""

    def __init__(self, sources: ExportSources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        s = self.sources
        up: dict[str, int] = {}

        def read(source: str, fn: Callable[[], Iterable[Metric]]) -> Iterator[Metric]:
            try:
                families = list(fn())
            except Exception as exc:  # one missing source never fails the scrape
                logger.warning("warden: /metrics could not read %s: %s: %s", source,
                               type(exc).__name__, exc)
                up[source] = 0
                return iter(())
            up.setdefault(source, 1)
            return iter(families)

        yield from read("store", lambda: task_families(*s.totals()))
        yield from read("store", lambda: worker_families(s.workers()))
        yield from read("broker", lambda: queue_families(*s.queues()))
        yield from read("store", lambda: [dlq_family(s.dlq_by_reason())])
        yield from read("store", lambda: breaker_families(s.breakers()))
        yield from read("store", lambda: [labelled_counter(
            "warden_deferrals", "Deliveries a guard re-scheduled without spending a retry, "
            "by reason.", "reason", s.deferrals())])
        yield from read("store", lambda: [scalar_counter(
            "warden_recorder_dropped", "Records the recorders dropped because the store was "
            "unreachable longer than their buffers last.", s.recorder_dropped())])
        yield from read("alerts", lambda: [alert_family(s.firing())])
        g = GaugeMetricFamily("warden_exporter_source_up",
                              "1 when the exporter could read the source at this scrape.",
                              labels=["source"])
        for source in ("store", "broker", "alerts"):
            g.add_metric([source], up.get(source, 0))
        yield g


__all__ = ["HISTOGRAMS", "TASK_EVENTS", "StoreCollector", "task_families"]
