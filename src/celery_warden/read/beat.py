"""Which queues beat feeds, and whether an online worker consumes each of them.

A periodic task routed to a queue no worker consumes piles up silently: beat keeps sending,
nothing runs, and no error is raised anywhere. The schedule and the routes live in the app's
configuration, so this needs the app (``celery -A proj warden status``).
"""

from __future__ import annotations

from typing import Any


def beat_queues(app: Any) -> dict[str, list[str]]:
    """Queue name → the scheduled task names routed there (through the app's own router)."""
    out: dict[str, list[str]] = {}
    schedule = app.conf.beat_schedule or {}
    for entry in schedule.values():
        if not isinstance(entry, dict) or not entry.get("task"):
            continue
        name = str(entry["task"])
        options = dict(entry.get("options") or {})
        route = app.amqp.router.route(options, name, (), {})
        queue = route.get("queue")
        queue_name = getattr(queue, "name", None) or (queue if isinstance(queue, str) else None)
        queue_name = queue_name or app.conf.task_default_queue
        out.setdefault(str(queue_name), []).append(name)
    return out


def unconsumed_beat_queues(app: Any, health: dict[str, Any]) -> list[dict[str, Any]]:
    """The beat-fed queues that no online worker (by its heartbeat) consumes."""
    consumed = {q for w in health["workers"] if w["status"] == "online" for q in w["queues"]}
    return [{"queue": queue, "tasks": sorted(tasks)}
            for queue, tasks in sorted(beat_queues(app).items()) if queue not in consumed]


__all__ = ["beat_queues", "unconsumed_beat_queues"]
