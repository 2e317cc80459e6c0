"""The workload the dashboard's browser tests watch: tasks that succeed, and a task that retries
twice with an error text full of markup and then dies into the DLQ.

Configured from the environment like ``tests/apps/fleet.py`` (per-test prefixes).
"""

from __future__ import annotations

import time

from celery import Celery

from celery_warden import Warden, celery_config, load_settings
from celery_warden.tasks.base import BaseTask, LongRunningTask, RetryableTask

settings = load_settings()
app = Celery("dashboard")
app.conf.update(celery_config(settings))
warden = Warden(app, settings)

#: What the failing task raises: the dashboard must show it as text, never run or parse it.
HOSTILE = "<script>window.__pwned=1</script> [i] gateway refused order"


@app.task(base=BaseTask, name="shop.ship")
def ship(order: int) -> int:
    time.sleep(0.02)
    return order


@app.task(base=RetryableTask, name="shop.charge", max_retries=2, backoff_base=0.2,
          backoff_jitter="none")
def charge(order: int, api_key: str = "") -> None:
    raise ConnectionError(f"{HOSTILE} {order}")


@app.task(base=LongRunningTask, bind=True, name="shop.export")
def export(self: LongRunningTask, steps: int, pause: float = 0.5) -> int:
    for done in range(1, steps + 1):
        time.sleep(pause)
        self.report_progress(done, steps, f"exported batch {done}")
    return steps
