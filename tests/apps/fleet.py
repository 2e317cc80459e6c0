"""A small Warden-wired Celery app that integration tests run in real ``celery worker`` processes.

Configured entirely from the environment (the fixtures in ``tests/support.py`` set per-test
prefixes), so tests never share queues or keys. ``FLEET_INJECT_FAULT=1`` makes every recorder
call raise, to prove a monitoring fault never fails a task.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery

from celery_warden import Warden, celery_config, load_settings

settings = load_settings()
app = Celery("fleet")
app.conf.update(celery_config(settings, worker_send_task_events=False))
warden = Warden(app, settings)

if os.environ.get("FLEET_INJECT_FAULT") == "1":

    def _explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("injected monitoring fault")

    warden.recorder.task = _explode  # type: ignore[method-assign]
    warden.recorder.observe = _explode  # type: ignore[method-assign]


@app.task(name="fleet.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="fleet.noop")
def noop() -> None:
    return None


@app.task(name="fleet.sleep")
def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.task(name="fleet.fail")
def fail(message: str = "boom") -> None:
    raise ValueError(message)


@app.task(name="fleet.retry_then_succeed", bind=True, max_retries=5)
def retry_then_succeed(self: Any, times: int) -> int:
    if self.request.retries < times:
        raise self.retry(exc=ConnectionError(f"attempt {self.request.retries}"), countdown=0)
    return self.request.retries


@app.task(name="fleet.record_order")
def record_order(label: str) -> str:
    """Append to a Redis list so tests can see execution order across priorities."""
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    client.rpush(f"{settings.key_prefix}:order", label)
    return label


@app.task(name="fleet.hard_limit", time_limit=1)
def hard_limit() -> None:
    time.sleep(10)


@app.task(name="fleet.pid")
def pid() -> int:
    return os.getpid()
