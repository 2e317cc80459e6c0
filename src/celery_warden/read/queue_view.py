"""Queues as the API lists them: depth, age of the oldest waiting message, consumers.

Depth comes from the broker (:mod:`.queues`), the oldest age from the messages' send stamps
(:mod:`.latency`; Redis only: ``None`` with a reason on RabbitMQ), consumers from the online
workers' heartbeats (each lists the queues it consumes), so no broker management API is needed.
"""

from __future__ import annotations

from typing import Any

from celery_warden.read.monitor import CeleryMonitor


def queue_rows(monitor: CeleryMonitor) -> list[dict[str, Any]]:
    names = monitor.queue_names()
    depths = monitor.get_queue_depths(names)
    try:
        ages: dict[str, dict[str, Any]] = monitor.get_queue_latency(names)
    except Exception as exc:  # informative only: the depth already answered
        ages = {n: {"age": None, "reason": f"unavailable: {type(exc).__name__}"} for n in names}
    consumers: dict[str, int] = {}
    for w in monitor.get_worker_health()["workers"]:
        if w["status"] == "online":
            for q in w["queues"]:
                consumers[str(q)] = consumers.get(str(q), 0) + 1
    rows = []
    for name in names:
        age = ages.get(name) or {}
        rows.append({
            "name": name,
            "depth": depths.get(name),
            "oldest_age_s": age.get("age"),
            "oldest_reason": age.get("reason"),
            "consumers": consumers.get(name, 0),
        })
    return rows


__all__ = ["queue_rows"]
