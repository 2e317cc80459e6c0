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

    # Every recorder entry point the handlers use: task(), observe(), and the pool child's
    # begin()/end() pair.
    for name in ("task", "observe", "begin", "end"):
        setattr(warden.recorder, name, _explode)


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


class _DiesAfterSuccess(app.Task):  # type: ignore[name-defined,misc]
    """Its pool process is SIGKILLed after Celery stored the result, before ``task_postrun``."""

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        import signal as _signal

        os.kill(os.getpid(), _signal.SIGKILL)


@app.task(name="fleet.dies_after_success", base=_DiesAfterSuccess)
def dies_after_success(x: int) -> int:
    return x


@app.task(name="fleet.dies_when_retried", bind=True)
def dies_when_retried(self: Any, x: int) -> int:
    """Succeeds on a first delivery; a later delivery of the same id (``retries`` > 0, as a
    retry re-published twice after a redelivery) kills its pool child before its body ends."""
    if self.request.retries:
        import signal as _signal

        os.kill(os.getpid(), _signal.SIGKILL)
    return x


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


# -- signal probe (FLEET_SIGNAL_PROBE=1) ------------------------------------------------------
# Appends "<signal> <task id or -> <pid>" to the Redis list ``<key_prefix>:signals`` from the
# process that runs each signal, so tests can pin which process (worker main or pool child)
# runs which signal. Writes synchronously: a test app, not a pattern for production handlers.
if os.environ.get("FLEET_SIGNAL_PROBE") == "1":
    from celery import signals as _signals

    _probe_clients: dict[int, Any] = {}

    def _probe(signal_name: str, task_id: Any = None) -> None:
        import redis

        pid_now = os.getpid()
        client = _probe_clients.get(pid_now)
        if client is None:  # one client per process: never reuse a parent's after fork
            client = _probe_clients[pid_now] = redis.Redis.from_url(settings.redis_url)
        client.rpush(f"{settings.key_prefix}:signals", f"{signal_name} {task_id or '-'} {pid_now}")

    def _task_id_of(kwargs: dict[str, Any]) -> Any:
        if kwargs.get("task_id"):
            return kwargs["task_id"]
        request = kwargs.get("request")
        if request is not None and getattr(request, "id", None):
            return request.id
        sender = kwargs.get("sender")
        return getattr(getattr(sender, "request", None), "id", None)

    def _connect_probe(sig: Any, name: str) -> None:
        def handler(sender: Any = None, **kwargs: Any) -> None:
            _probe(name, _task_id_of({"sender": sender, **kwargs}))

        sig.connect(handler, weak=False, dispatch_uid=f"fleet-probe-{name}")

    for _name in ("task_received", "task_prerun", "task_postrun", "task_success",
                  "task_failure", "task_retry", "task_revoked", "worker_init", "worker_ready",
                  "worker_process_init", "worker_shutting_down"):
        _connect_probe(getattr(_signals, _name), _name)


@app.task(name="fleet.outcome")
def outcome(fail: bool = False) -> str:
    """Succeeds or fails on demand (one task name with a chosen failure rate)."""
    if fail:
        raise ValueError("requested failure")
    return "ok"
