"""One worker: its heartbeat, and the tasks it runs now (Celery's remote ``inspect active``).

The heartbeat is always there (the store); the live list needs the worker to answer a
broadcast within :data:`INSPECT_TIMEOUT` seconds, so a busy or gone worker answers
``active_tasks: null`` with the reason instead of making the request hang.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from celery_warden.read.monitor import CeleryMonitor

INSPECT_TIMEOUT = 1.0


def find_worker(monitor: CeleryMonitor, hostname: str) -> dict[str, Any] | None:
    for w in monitor.get_worker_health()["workers"]:
        if w["hostname"] == hostname:
            return dict(w)
    return None


def active_tasks(app: Celery, hostname: str) -> tuple[list[dict[str, Any]] | None, str | None]:
    """``(tasks, None)`` or ``(None, reason)``."""
    try:
        replies = app.control.inspect([hostname], timeout=INSPECT_TIMEOUT).active() or {}
    except Exception as exc:  # the broker is down or refuses
        return None, f"inspect failed: {type(exc).__name__}"
    if hostname not in replies:
        return None, f"no reply within {INSPECT_TIMEOUT:g}s"
    out = []
    for t in replies[hostname] or []:
        out.append({
            "task_id": t.get("id"), "name": t.get("name"),
            "started": t.get("time_start"), "worker_pid": t.get("worker_pid"),
            "queue": (t.get("delivery_info") or {}).get("routing_key"),
        })
    return out, None


__all__ = ["INSPECT_TIMEOUT", "active_tasks", "find_worker"]
