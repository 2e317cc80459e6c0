"""The autoscaling signal: how many worker processes each queue needs, and why.

Formula (per queue; ``docs/alerts.md`` explains it with an example)::

    backlog  B = queued in the broker (every priority lane) + reserved/prefetched by workers
    arrival  λ = completions per second over WARDEN_AUTOSCALE_WINDOW + backlog growth per second
    service  S = average run time of the queue's tasks over the same window
    target   T = WARDEN_TARGET_LATENCY

    raw      = λ·S            processes kept busy by what arrives (Little's law)
             + B·S / T        processes that clear today's backlog within the target latency
    desired  = clamp(ceil(raw), WARDEN_AUTOSCALE_MIN, WARDEN_AUTOSCALE_MAX)
    given    = max(desired over the last WARDEN_AUTOSCALE_STABILIZATION seconds)

Scaling up is immediate; scaling down waits until every recommendation of the stabilization
window agrees (Kubernetes' HPA scale-down stabilization), so a load that wobbles around a
boundary does not flap. Without a measured service time yet (a new queue), a non-empty backlog
keeps at least the processes that run now (and at least one).

Shaped for KEDA's ``metrics-api`` scaler: ``GET /api/v1/autoscale?queue=default`` answers
``{"desired_processes": N, ...}`` (``valueLocation: desired_processes``, ``targetValue`` = the
concurrency of one worker pod); without ``queue`` every queue is under ``queues.<name>``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from celery_warden.alerts.demand import Demand, QueueLoad
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.settings import WardenSettings
from celery_warden.timefmt import iso

FORMULA = ("desired = clamp(ceil(arrival_rate*service_time + backlog*service_time/"
           "target_latency), min, max); scale-down only after every recommendation of the "
           "stabilization window agrees")


@dataclass(frozen=True, slots=True)
class Bounds:
    minimum: int
    maximum: int
    target_latency: float
    stabilization: float


def raw_need(load: QueueLoad, target_latency: float) -> tuple[float | None, list[str]]:
    """Processes the queue needs now (before bounds and stabilization) and the reasoning;
    ``None`` when nothing has been measured yet."""
    backlog = load.backlog
    why: list[str] = []
    if load.service_time is None:
        if backlog:
            keep = max(load.current_processes, 1)
            why.append(f"{backlog} waiting but no run time measured yet: keep {keep} "
                       f"(the processes running now, at least one)")
            return float(keep), why
        why.append("no backlog and nothing measured: the minimum")
        return None, why
    s = load.service_time
    rate = max(load.arrival_rate or 0.0, 0.0)
    steady = rate * s
    drain = backlog * s / target_latency
    why.append(f"arrivals {rate:.3g}/s x run time {s:.3g}s = {steady:.3g} busy processes")
    why.append(f"backlog {backlog} x {s:.3g}s / target {target_latency:g}s = {drain:.3g} "
               f"processes to clear it in time")
    return steady + drain, why


def decide(load: QueueLoad, bounds: Bounds, history: Sequence[tuple[float, int]],
           now: float) -> dict[str, Any]:
    """The recommendation for one queue from its load and its recent raw recommendations
    (``(time, desired)``), as a JSON-ready dict with the reasoning."""
    raw, why = raw_need(load, bounds.target_latency)
    wanted = bounds.minimum if raw is None else math.ceil(round(raw, 6))
    desired = min(max(wanted, bounds.minimum), bounds.maximum)
    if raw is not None and wanted != desired:
        why.append(f"{wanted} clamped to [{bounds.minimum}, {bounds.maximum}]")
    recent = [n for ts, n in history if now - ts <= bounds.stabilization]
    given = max([desired, *recent])
    if given > desired:
        why.append(f"holding {given}: a recommendation of the last "
                   f"{bounds.stabilization:g}s was that high (scale-down stabilization)")
    expected_wait = (load.backlog * load.service_time / load.current_processes
                     if load.service_time is not None and load.current_processes else None)
    return {
        "queue": load.queue,
        "desired_processes": given,
        "desired_now": desired,
        "raw": None if raw is None else round(raw, 3),
        "current_processes": load.current_processes,
        "inputs": {**asdict(load), "backlog": load.backlog,
                   "expected_wait": None if expected_wait is None else round(expected_wait, 3),
                   "target_latency": bounds.target_latency},
        "bounds": {"min": bounds.minimum, "max": bounds.maximum,
                   "stabilization_seconds": bounds.stabilization},
        "reasoning": why,
    }


class Autoscaler:
    """Reads each queue's load (:class:`~celery_warden.alerts.demand.Demand`), decides, and
    keeps the raw recommendations in Redis (``P:autoscale:<queue>``) for stabilization, so every
    replica of ``warden serve`` answers alike."""

    def __init__(self, settings: WardenSettings, monitor: CeleryMonitor) -> None:
        self.settings = settings
        self.monitor = monitor
        self.demand = Demand(settings, monitor)
        self.bounds = Bounds(settings.autoscale_min, settings.autoscale_max,
                             settings.target_latency, settings.autoscale_stabilization)

    def recommend(self, queue: str | None = None) -> dict[str, Any]:
        """Every queue (or one: logical or full name) with its recommendation."""
        now = time.time()
        names = self.demand.queue_names()
        if queue is not None:
            full = queue if queue in names else f"{self.settings.queue_prefix}{queue}"
            names = [full]
        loads = self.demand.loads(names, now)
        out: dict[str, Any] = {}
        for load in loads:
            history = self.demand.history(load.queue, now)
            decision = decide(load, self.bounds, history, now)
            self.demand.remember(load.queue, now, decision["desired_now"], load.backlog)
            out[load.queue] = decision
        result: dict[str, Any] = {"generated_at": iso(now), "formula": FORMULA,
                                  "target_latency": self.settings.target_latency,
                                  "queues": out}
        if queue is not None:
            result.update(out[names[0]])
        return result


__all__ = ["FORMULA", "Autoscaler", "Bounds", "decide", "raw_need"]
