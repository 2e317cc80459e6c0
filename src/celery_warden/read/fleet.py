"""The fleet primitives over a window: breakers, idempotency and fleet rate limits.

Counts come from the per-minute metric buckets (outcomes the guards record without I/O):
``duplicates`` are deliveries that returned an earlier run's result instead of running;
``deferred`` counts deferrals (a task may be deferred several times).
"""

from __future__ import annotations

from typing import Any

from celery_warden.read.breakers import BreakerReader
from celery_warden.read.metrics import MetricsReader, Window, window_label
from celery_warden.record.windows import parse_window

#: Bucket counters written by the fleet primitives (see :mod:`celery_warden.fleet.guards`).
FLEET_COUNTS = ("duplicate", "deferred_duplicate", "deferred_store", "lease_lost",
                "deferred_rate", "deferred_circuit")


class FleetReader:
    def __init__(self, metrics: MetricsReader, breakers: BreakerReader) -> None:
        self.metrics = metrics
        self.breakers = breakers

    def summary(self, window: Window = "1h") -> dict[str, Any]:
        per_task = self.metrics.counts(FLEET_COUNTS, window)
        totals = {f: sum(row[f] for row in per_task.values()) for f in FLEET_COUNTS}
        return {
            "window": window_label(window, parse_window(window)),
            "circuit_breakers": {
                "trips": self.breakers.trips(window),
                "deferred": totals["deferred_circuit"],
                "breakers": self.breakers.all(),
            },
            "idempotency": {
                "duplicates": totals["duplicate"],
                "deferred_while_running": totals["deferred_duplicate"],
                "deferred_store_unreachable": totals["deferred_store"],
                "leases_lost": totals["lease_lost"],
            },
            "rate_limits": {"deferred": totals["deferred_rate"]},
            "per_task": per_task,
        }


__all__ = ["FLEET_COUNTS", "FleetReader"]
