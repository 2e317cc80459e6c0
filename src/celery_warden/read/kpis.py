"""The spec's seven KPIs over a window, each with where its number comes from and its unit.

Rates are percentages as the spec writes them: task success rate = successful / total x 100,
retry rate = retried / total x 100 (total = tasks finished in the window; see
:meth:`celery_warden.read.metrics.MetricsReader.performance`); worker utilization = busy / slots
x 100 over online workers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery_warden.read.breakers import BreakerReader
from celery_warden.read.metrics import FINAL_OUTCOMES, MetricsReader, Window, window_label
from celery_warden.read.workers import WorkerReader
from celery_warden.units import percent

#: Summary fields the KPIs use (outcomes for the rates, ``done``/``dsum`` for the averages).
KPI_FIELDS = (*FINAL_OUTCOMES, "retried", "done", "dsum")


class KpiReader:
    """Composes the metric, worker, queue, DLQ and breaker readers into the seven KPIs."""

    def __init__(self, metrics: MetricsReader, workers: WorkerReader, breakers: BreakerReader,
                 depths: Callable[[], dict[str, int | None]],
                 dlq_size: Callable[[], int]) -> None:
        self.metrics = metrics
        self.workers = workers
        self.breakers = breakers
        self.depths = depths
        self.dlq_size = dlq_size

    def kpis(self, window: Window = "1h") -> dict[str, Any]:
        # One read of the cross-name summaries (7-16 hashes for 1 h, whatever the number of
        # names): the fleet-wide rates are their sums (the same numbers as
        # ``performance(None)``), the averages per name.
        seconds = self.metrics.window_seconds(window)
        active = self.metrics.summaries(window).per_name
        # Every name seen within the retention has a row (None: nothing finished in the window).
        per = {name: {f: active.get(name, {}).get(f, 0.0) for f in KPI_FIELDS}
               for name in dict.fromkeys([*self.metrics.task_names(), *active])}
        total = {f: int(sum(row[f] for row in per.values())) for f in KPI_FIELDS
                 if f != "dsum"}
        finished = sum(total[o] for o in FINAL_OUTCOMES)
        overall = {"window": window_label(window, seconds),
                   "success_rate": percent(total["success"], finished),
                   "retry_rate": percent(total["retried"], finished)}
        per_task = {name: row["dsum"] / row["done"] if row["done"] else None
                    for name, row in per.items()}
        try:
            depths: dict[str, int | None] | None = self.depths()
            depth_source = "broker"
        except Exception as exc:
            depths, depth_source = None, f"broker unreachable: {type(exc).__name__}"
        health = self.workers.health()
        online = [w for w in health["workers"] if w["status"] == "online"]
        busy = sum(w["active"] for w in online)
        slots = sum(w["concurrency"] for w in online)
        return {
            "window": overall["window"],
            "task_success_rate": {"value": overall["success_rate"], "unit": "%",
                                  "source": "metric buckets"},
            "average_task_duration": {"value": per_task, "unit": "s",
                                      "source": "metric buckets"},
            "queue_depth": {
                "value": None if depths is None else sum(v or 0 for v in depths.values()),
                "unit": "messages", "per_queue": depths, "source": depth_source,
            },
            "worker_utilization": {
                "value": percent(busy, slots), "unit": "%",
                "per_worker": {w["hostname"]: percent(w["active"], w["concurrency"])
                               for w in online},
                "source": "worker heartbeats",
            },
            "retry_rate": {"value": overall["retry_rate"], "unit": "%",
                           "source": "metric buckets"},
            "dlq_size": {"value": self.dlq_size(), "unit": "entries",
                         "source": "dead letter queue"},
            "circuit_breaker_trips": {
                "value": self.breakers.trips(window), "unit": "trips",
                "source": "circuit breaker trip log (every transition to open, fleet-wide)",
            },
        }


__all__ = ["KpiReader"]
