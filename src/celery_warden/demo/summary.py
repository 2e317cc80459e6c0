"""The summary's numbers: what the monitor reports since the demo started, read by read."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery_warden.alerts.view import AlertsView
    from celery_warden.demo.workload import Workload
    from celery_warden.read.monitor import CeleryMonitor

#: Counters the summary reports "since the demo started" (differences from a baseline).
COUNTED = ("count", "success", "failure", "retry", "retried")


@dataclass
class Snapshot:
    elapsed: float
    sent: int = 0
    send_errors: int = 0
    #: Counts since the demo started (``count`` = tasks finished), None if unreadable.
    counts: dict[str, int] | None = None
    throughput: float | None = None
    #: Rolling stats (the last 5 minutes), or over the run for the final summary.
    recent: dict[str, Any] | None = None
    health: dict[str, Any] | None = None
    depths: dict[str, int | None] | None = None
    #: Firing alerts (alertname: subject), None if unreadable or no evaluator runs.
    alerts: list[str] | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def finished(self) -> int | None:
        return None if self.counts is None else self.counts["count"]


class Summary:
    """Reads the monitor; every read may fail on its own without ending the demo.

    "Since start" counts must not include what an earlier run (same Redis, same prefixes)
    recorded in the same minutes, and metric buckets have one-minute resolution. So the run's
    window always starts exactly at :attr:`anchor` (the minute before the start minute) and the
    counts found there at start-up are the baseline subtracted from every later reading.
    """

    def __init__(self, monitor: CeleryMonitor, queues: list[str],
                 workload: Workload | None, alerts: AlertsView | None = None) -> None:
        self.monitor = monitor
        self.alerts = alerts
        self.queues = queues
        self.workload = workload
        self.started = time.monotonic()
        self.anchor = (int(time.time()) // 60 - 1) * 60
        self.baseline: dict[str, int] | None = None
        self._prev: tuple[float, int] | None = None

    def run_window(self) -> int:
        """Seconds from :attr:`anchor` to now (>= 60): the window starts in the anchor minute."""
        return max(60, int(time.time() - self.anchor))

    def take_baseline(self) -> str | None:
        """Read the counts already in the run's window; returns an error text if it failed."""
        try:
            stats = self.monitor.get_performance_stats(None, self.run_window())
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        self.baseline = {k: int(stats[k]) for k in COUNTED}
        self.started = time.monotonic()
        return None

    def snapshot(self, final: bool = False) -> Snapshot:
        now = time.monotonic()
        snap = Snapshot(elapsed=now - self.started)
        if self.workload is not None:
            snap.sent, snap.send_errors = self.workload.sent, self.workload.errors
            if self.workload.last_error and self.workload.errors:
                snap.errors.append(f"send: {self.workload.last_error} "
                                   f"({self.workload.errors} failed sends)")
        m = self.monitor
        try:
            run = m.get_performance_stats(None, self.run_window())
            base = self.baseline or dict.fromkeys(COUNTED, 0)
            snap.counts = {k: max(0, int(run[k]) - base[k]) for k in COUNTED}
            finished = snap.counts["count"]
            if self._prev is not None and now > self._prev[0]:
                snap.throughput = max(0, finished - self._prev[1]) / (now - self._prev[0])
            self._prev = (now, finished)
            if final:
                snap.recent = run
        except Exception as exc:
            snap.errors.append(f"performance: {type(exc).__name__}: {exc}")
        if not final:
            try:
                snap.recent = m.get_performance_stats(None, "5m")
            except Exception as exc:
                snap.errors.append(f"performance: {type(exc).__name__}: {exc}")
        try:
            snap.health = m.get_worker_health()
        except Exception as exc:
            snap.errors.append(f"workers: {type(exc).__name__}: {exc}")
        try:
            snap.depths = m.get_queue_depths(self.queues)
        except Exception as exc:
            snap.errors.append(f"queues: {type(exc).__name__}: {exc}")
        if self.alerts is not None:
            try:
                snap.alerts = [f"{a['alertname']}: {a['subject']}"
                               for a in self.alerts.alerts() if a["state"] == "firing"]
            except Exception as exc:
                snap.errors.append(f"alerts: {type(exc).__name__}: {exc}")
        snap.errors = list(dict.fromkeys(snap.errors))
        return snap
