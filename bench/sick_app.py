"""The worker app of ``bench/sick_store.py``: Warden on, a no-op that reports when it ran, and
a base-class task that fails for good (its DLQ entry is written on the task's path)."""

from __future__ import annotations

import time

from celery import Celery

from celery_warden import Warden, celery_config, load_settings
from celery_warden.tasks.base import BaseTask

settings = load_settings()
app = Celery("sick")
app.conf.update(celery_config(settings))
warden = Warden(app, settings)


@app.task(name="sick.noop")
def noop() -> float:
    return time.time()


@app.task(base=BaseTask, name="sick.fail", max_retries=0)
def fail(i: int) -> None:
    raise ValueError(f"failure {i}")
