"""The per-task performance line: one log record each time a task attempt finishes.

Written by the pool child from ``task_postrun`` (see :meth:`SignalHandlers.on_postrun
<celery_warden.record.signals.SignalHandlers.on_postrun>`), with the numbers the handler already
computed, so it costs one ``isEnabledFor`` check and one log call. Logger
``celery_warden.perf``, level INFO, message ``task finished``, fields:

``state`` (SUCCESS, FAILURE, RETRY, IGNORED, DEFERRED, ...), ``duration`` (seconds the task ran),
``queue_wait`` (seconds from publish — or ETA — to start; absent when the publisher did not
stamp it), ``retries``, ``worker``; plus the task context every line inside a task carries
(``task_id``, ``task_name``, ``queue``, ...). Silence it with
``logging.getLogger("celery_warden.perf").setLevel(logging.WARNING)``.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("celery_warden.perf")

MESSAGE = "task finished"


def task_finished(task: Any, state: str, duration: float, queue_wait: float | None,
                  retries: int, worker: str | None = None) -> None:
    """Log the performance line for one finished attempt of ``task`` (inside its context)."""
    if not logger.isEnabledFor(logging.INFO):
        return
    extra: dict[str, Any] = {
        "state": state,
        "duration": round(duration, 6),
        "retries": retries,
        "worker": worker or getattr(task.request, "hostname", None),
    }
    if queue_wait is not None:
        extra["queue_wait"] = round(queue_wait, 6)
    logger.info(MESSAGE, extra=extra)


__all__ = ["MESSAGE", "task_finished"]
