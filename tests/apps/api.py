"""Test app for the API tests: successes, dead-lettered failures with hostile text, a parent
that sends children (workflow), a slow task (revoke), secrets in arguments (masking).

Configured from the environment like ``tests/apps/fleet.py``; the API server runs as
``celery -A tests.apps.api warden serve`` so it knows these task names.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Celery

from celery_warden import Warden, celery_config, load_settings
from celery_warden.tasks.base import BaseTask

settings = load_settings()
app = Celery("api")
app.conf.update(celery_config(settings))
warden = Warden(app, settings)


@app.task(base=BaseTask, name="api.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(base=BaseTask, name="api.explode", max_retries=0)
def explode(message: str, **kwargs: Any) -> None:
    """Fails with ``message`` (dead-lettered: a BaseTask's final failure goes to the DLQ)."""
    raise ValueError(message)


@app.task(base=BaseTask, name="api.parent", bind=True)
def parent(self: Any, n: int) -> int:
    """Sends ``n`` children (their ``parent_id`` is this task)."""
    for i in range(n):
        add.delay(i, 1)
    return n


@app.task(base=BaseTask, name="api.sleep")
def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
