"""Idempotent tasks across two workers x two children, counted at a real HTTP dependency."""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from celery_warden import CeleryMonitor
from celery_warden.settings import WardenSettings
from tests.dependency import FlakyServer
from tests.support import WorkerProcess, client_app, wait_for

pytestmark = pytest.mark.slow

APP = "tests.apps.resilience"


def two_workers(settings: WardenSettings, workers: list[WorkerProcess]) -> None:
    workers += [WorkerProcess(settings, app=APP, name=n, concurrency=2).start()
                for n in ("a", "b")]


def test_two_hundred_concurrent_submissions_of_twenty_keys_run_twenty_times(settings, workers):
    """200 submissions of 20 keys from 8 threads at once → exactly 20 executions at the server
    (one per key); every duplicate returns its key's first result; 180 duplicates counted."""
    two_workers(settings, workers)
    app = client_app(settings)
    monitor = CeleryMonitor(settings, app=app)
    keys = [f"k{i}" for i in range(20)]
    with FlakyServer() as server:
        jobs = [keys[i % 20] for i in range(200)]

        def submit(key: str):
            return key, app.send_task("resilience.idem", (server.url, key), {"sleep": 0.3})

        with ThreadPoolExecutor(8) as pool:
            submitted = list(pool.map(submit, jobs))
        answers = [(key, r.get(timeout=120)) for key, r in submitted]
        assert server.count("/work") == 20
        assert {server.count("/work", key=k) for k in keys} == {1}
    assert all(answer == f"{key}:1" for key, answer in answers)

    def duplicates() -> int:
        return monitor.get_fleet_primitives("10m")["idempotency"]["duplicates"]

    wait_for(lambda: duplicates() >= 180, 20, 0.2, "180 duplicates counted")
    assert duplicates() == 180
    statuses = [monitor.get_task_status(r.id) for _, r in submitted]
    assert sum(1 for s in statuses if s["duplicate_of"]) == 180
    firsts = {s["task_id"] for s in statuses if not s["duplicate_of"]}
    assert {s["duplicate_of"] for s in statuses if s["duplicate_of"]} <= firsts


def test_plain_celery_task_with_the_spec_decorator_is_idempotent(settings, workers):
    """``@celery_app.task`` over ``@idempotent_task(...)`` without a Warden base class: 30
    submissions of 5 keys → 5 executions, the first result returned to every duplicate."""
    two_workers(settings, workers)
    app = client_app(settings)
    with FlakyServer() as server:
        results = [(f"p{i % 5}", app.send_task("resilience.idem_plain", (server.url, f"p{i % 5}")))
                   for i in range(30)]
        assert all(r.get(timeout=120) == f"{key}:1" for key, r in results)
        assert server.count("/work") == 5


def test_a_failed_first_attempt_releases_the_key_so_a_retry_runs(settings, workers):
    """The first call fails (503) and the task retries; the key was released, so the work runs
    again and succeeds. Duplicates submitted alongside all end with that one success."""
    two_workers(settings, workers)
    app = client_app(settings)
    with FlakyServer() as server:
        results = [app.send_task("resilience.idem_retry", (server.url, "f1")) for _ in range(5)]
        assert {r.get(timeout=120) for r in results} == {"f1:2"}
        assert server.count("/flaky", status=503) == 1
        assert server.count("/flaky", status=200) == 1


def test_the_lease_of_a_sigkilled_holder_expires_and_the_work_completes(settings, workers):
    """Worker A claims a key and hangs in the dependency; A is SIGKILLed (main and children), so
    nothing can release the claim. A duplicate on worker B waits (deferred) until the 3 s lease
    expires, then runs the work to completion."""
    holder = WorkerProcess(settings, app=APP, name="holder", concurrency=2).start()
    workers.append(holder)
    app = client_app(settings)
    monitor = CeleryMonitor(settings, app=app)
    key = f"lease-{uuid.uuid4().hex[:6]}"
    with FlakyServer() as server:
        app.send_task("resilience.idem_lease", (server.url, key), {"hang": True})
        wait_for(lambda: server.count("/hang", key=key) == 1, 60, 0.1, "the holder to call")
        kids = holder.children()
        os.kill(holder.pid, signal.SIGKILL)
        for pid in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        workers.append(WorkerProcess(settings, app=APP, name="b", concurrency=2).start())
        duplicate = app.send_task("resilience.idem_lease", (server.url, key))
        assert duplicate.get(timeout=120) == f"{key}:1"
        assert server.count("/work", key=key) == 1
    status = monitor.get_task_status(duplicate.id)
    assert status["state"] == "SUCCESS" and status["retries"] == 0
