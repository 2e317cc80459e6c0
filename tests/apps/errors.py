"""Test app for error handling: base task classes, DLQ reasons, poison pills, progress.

Configured from the environment like ``tests/apps/fleet.py``. Tasks that must change behaviour
between runs (kill the child once, fail until "fixed") keep their switch in Redis under the
test's own key prefix.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import redis
from celery import Celery

from celery_warden import Warden, celery_config, load_settings
from celery_warden.tasks.base import BaseTask, CriticalTask, LongRunningTask, RetryableTask

settings = load_settings()
app = Celery("errors")
app.conf.update(celery_config(settings))
warden = Warden(app, settings)


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, decode_responses=True)


def _key(name: str) -> str:
    return f"{settings.key_prefix}:test:{name}"


@app.task(base=RetryableTask, name="errors.unreachable", max_retries=3, backoff_base=0.2,
          backoff_jitter="none")
def unreachable(service: str) -> None:
    raise ConnectionError(f"{service} refused the connection")


@app.task(base=RetryableTask, name="errors.jittered", max_retries=4, backoff_base=0.2,
          backoff_cap=0.6)
def jittered() -> None:
    raise TimeoutError("upstream timed out")


@app.task(base=BaseTask, name="errors.bug")
def bug(order_id: int) -> None:
    raise ValueError(f"order {order_id} has no line items")


@app.task(base=RetryableTask, name="errors.not_retryable", max_retries=5)
def not_retryable() -> None:
    raise KeyError("missing")


@app.task(base=BaseTask, name="errors.soft_limit", soft_time_limit=1, time_limit=10)
def soft_limit() -> None:
    time.sleep(5)


@app.task(base=BaseTask, name="errors.hard_limit", soft_time_limit=None, time_limit=1)
def hard_limit() -> None:
    time.sleep(10)


@app.task(base=BaseTask, name="errors.suicide")
def suicide() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@app.task(base=BaseTask, name="errors.kill_once")
def kill_once(tag: str) -> str:
    if _redis().incr(_key(f"kill_once:{tag}")) == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return tag


@app.task(base=BaseTask, name="errors.fixable", max_retries=0)
def fixable(item: int) -> int:
    if not _redis().get(_key("fixed")):
        raise RuntimeError(f"dependency broken for item {item}")
    _redis().incr(_key(f"fixable:{item}"))
    return item


@app.task(base=LongRunningTask, name="errors.progress")
def progress(steps: int, pause: float) -> int:
    task: Any = progress
    for i in range(steps):
        task.report_progress(i + 1, steps, f"step {i + 1}")
        time.sleep(pause)
    return steps


@app.task(base=CriticalTask, name="errors.critical")
def critical() -> str:
    return "done"


@app.task(base=BaseTask, name="errors.ok")
def ok(x: int) -> int:
    return x


@app.task(name="errors.plain_fail")
def plain_fail(kind: str) -> None:
    errors: dict[str, type[Exception]] = {"a": ValueError, "b": KeyError, "c": RuntimeError}
    raise errors[kind](f"cause {kind} for item {time.time_ns()}")


@app.task(base=BaseTask, name="errors.kill_worker")
def kill_worker() -> None:
    """Kill the worker's main process and then this pool child: the whole worker dies."""
    os.kill(os.getppid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


@app.task(base=BaseTask, name="errors.[b]hostile[/b]")
def hostile(message: str) -> None:
    """Fails with untrusted text: Rich markup in its name and in its message (CLI tests)."""
    raise ValueError(message)
