"""The chaos suite's task mix, run by real ``celery worker`` processes (``tests/chaos/``).

One task per kind the suite submits: fast, slow, long, retrying, failing (fixable, so DLQ
requeues can succeed), idempotent, breaker-guarded and rate-limited — each on the package's own
base classes and fleet primitives — plus a poison pill that kills its pool child every time.
Every body reports to the ground truth (``tests/chaos/truth.py``) on a separate Redis database;
nothing here reads Warden's store. Configured from the environment like ``tests/apps/fleet.py``.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from celery import Celery, signals

from celery_warden import Warden, celery_config, load_settings
from celery_warden.fleet.breaker import CircuitBreaker
from celery_warden.fleet.idempotency import idempotent_task
from celery_warden.tasks.base import BaseTask, LongRunningTask, RetryableTask
from tests.chaos import truth

settings = load_settings()
app = Celery("chaos")
app.conf.update(celery_config(settings, worker_send_task_events=False))
warden = Warden(app, settings)

#: Trips at 30 % failures over >= 10 calls; guarded tasks fail one call in eight.
dependency = CircuitBreaker("chaos-dependency", failure_rate_threshold=30.0, minimum_calls=10,
                            window_size=20, recovery_timeout=1.0, half_open_calls=2,
                            max_half_open=10.0, half_open_retry=0.3)


class DependencyDown(Exception):
    """The guarded dependency failed (a breaker failure)."""


def _begin(task: Any) -> str:
    task_id = str(task.request.id)
    truth.started(task_id, int(task.request.retries or 0))
    return task_id


@app.task(bind=True, base=BaseTask, name="chaos.fast")
def fast(self: Any, i: int) -> int:
    truth.done(_begin(self))
    return i


@app.task(bind=True, base=BaseTask, name="chaos.slow")
def slow(self: Any, i: int, seconds: float) -> int:
    task_id = _begin(self)
    time.sleep(seconds)
    truth.done(task_id)
    return i


@app.task(bind=True, base=LongRunningTask, name="chaos.long")
def long_task(self: Any, i: int, seconds: float) -> int:
    task_id = _begin(self)
    steps = max(1, int(seconds / 0.5))
    for n in range(steps):
        self.report_progress(n + 1, steps, "working")
        time.sleep(seconds / steps)
    truth.done(task_id)
    return i


@app.task(bind=True, base=RetryableTask, name="chaos.retrying", max_retries=3,
          backoff_base=0.1, backoff_cap=0.5)
def retrying(self: Any, i: int, failures: int) -> int:
    """Raises a transient error on its first ``failures`` attempts (more than 3: the DLQ)."""
    task_id = _begin(self)
    if self.request.retries < failures:
        raise ConnectionError(f"attempt {self.request.retries} of item {i} refused")
    truth.done(task_id)
    return i


@app.task(bind=True, base=BaseTask, name="chaos.failing", max_retries=0)
def failing(self: Any, i: int) -> int:
    """Fails for good (the DLQ, reason ``exception``) until the driver sets the fixed flag."""
    task_id = _begin(self)
    if not truth.fixed():
        raise ValueError(f"item {i} is broken")
    truth.done(task_id)
    return i


@app.task(bind=True, base=BaseTask, name="chaos.idempotent")
@idempotent_task(lambda i, key: f"chaos:{key}", ttl=3600)
def idempotent(self: Any, i: int, key: str) -> int:
    """Submitted in pairs with one key: the body runs once per key."""
    truth.done(_begin(self))
    return i


@signals.task_postrun.connect
def _idempotent_finished(sender: Any = None, task_id: str | None = None,
                         state: str | None = None, **_: Any) -> None:
    """Every delivery of an idempotent task that ends in SUCCESS — a duplicate returns the
    first run's result without its body, so ``done`` cannot see it run to its end twice (a
    duplicate redelivered after a worker SIGKILL)."""
    if getattr(sender, "name", None) == "chaos.idempotent" and state == "SUCCESS" and task_id:
        truth.finished(task_id)


@app.task(bind=True, base=BaseTask, name="chaos.guarded", max_retries=0)
def guarded(self: Any, i: int) -> int:
    """Calls a dependency through the breaker; one call in eight fails (the DLQ). The start is
    recorded inside the guard: a call the open breaker refuses is deferred, not executed."""
    with dependency:
        task_id = _begin(self)
        if i % 8 == 0:
            raise DependencyDown(f"dependency failed for item {i}")
    truth.done(task_id)
    return i


@app.task(bind=True, base=BaseTask, name="chaos.limited", fleet_rate_limit="100/s")
def limited(self: Any, i: int) -> int:
    truth.done(_begin(self))
    return i


@app.task(bind=True, base=BaseTask, name="chaos.poison")
def poison(self: Any, i: int) -> None:
    """Kills its own pool child every time: a poison pill."""
    _begin(self)
    os.kill(os.getpid(), signal.SIGKILL)
