"""A failing monitoring handler never fails a task; recorded times are plausible; a hard time
limit is one failure."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from celery import Celery

from celery_warden import CeleryMonitor
from tests.integration.test_rabbitmq import client_apps
from tests.support import WorkerProcess, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def clients() -> Iterator[Callable[..., Celery]]:
    with client_apps() as make:
        yield make


def _final(monitor: CeleryMonitor, task_id: str, state: str = "SUCCESS") -> dict[str, Any]:
    return wait_for(lambda: (st := monitor.get_task_status(task_id))["state"] == state and st,
                    15, 0.1, f"{task_id} recorded as {state}")


def _times(status: dict[str, Any]) -> list[datetime]:
    keys = ("sent_at", "received_at", "started_at", "finished_at")
    assert all(status[k] for k in keys), status
    return [datetime.fromisoformat(status[k]) for k in keys]


def test_a_raising_handler_never_fails_a_task_and_is_logged_throttled(settings, workers,
                                                                        clients):
    """With every recorder call raising inside the worker (FLEET_INJECT_FAULT=1), 200 tasks
    still return their results, failures and retries keep their own outcomes, nothing from the
    worker side reaches the store, and the critical 'monitoring handler ... failed' line is
    logged a few times (once per handler and process), not once per task."""
    worker = WorkerProcess(settings, concurrency=2, extra_env={"FLEET_INJECT_FAULT": "1"})
    workers.append(worker.start())
    app = clients(settings)
    adds = [app.send_task("fleet.add", (i, i)) for i in range(200)]
    fails = [app.send_task("fleet.fail", ("still fails",)) for _ in range(5)]
    retried = [app.send_task("fleet.retry_then_succeed", (2,)) for _ in range(3)]
    assert [r.get(timeout=60) for r in adds] == [2 * i for i in range(200)]
    for r in fails:
        r.get(timeout=60, propagate=False)
        assert r.state == "FAILURE"
        assert isinstance(r.result, ValueError) and str(r.result) == "still fails"
    assert [r.get(timeout=60) for r in retried] == [2, 2, 2]

    time.sleep(0.5)  # let anything that would be written arrive
    monitor = CeleryMonitor(settings, app=app)
    # Only the publisher (this process, no fault) recorded: the worker's writes all raised.
    assert monitor.get_task_status(adds[0].id)["state"] == "SENT"
    assert monitor.get_performance_stats("fleet.add", "10m")["count"] == 0

    log = worker.log()
    lines = [ln for ln in log.splitlines() if "monitoring handler" in ln and "failed" in ln]
    assert lines, f"no critical line logged:\n{log[-3000:]}"
    assert "injected monitoring fault" in log
    assert all("CRITICAL/" in ln for ln in lines)
    # Throttled per handler and process: "[..: CRITICAL/ForkPoolWorker-1] warden: monitoring
    # handler SignalHandlers.on_prerun failed; ..." appears once per (process, handler) pair.
    pairs = [(ln.split("CRITICAL/")[1].split("]")[0], ln.split("monitoring handler ")[1].split()[0])
             for ln in lines]
    assert len(pairs) == len(set(pairs)), f"a handler was logged twice in one process: {lines}"
    assert {"ChildHandlers.on_prerun", "ChildHandlers.on_postrun"} <= {h for _, h in pairs}
    assert len(lines) < len(adds) // 10, f"{len(lines)} lines for {len(adds) + 8} tasks"
    assert worker.process is not None and worker.process.poll() is None


def test_runtime_queue_wait_and_timestamps_are_plausible(settings, workers, clients):
    """sleep(0.5) records a runtime in [0.5, 0.8]; a task queued behind a 1 s task on the only
    slot records queue_wait ~1 s; a countdown=1 task queued behind a 2 s task records ~1 s (wait
    counts from its ETA, not from sending); sent <= received <= started <= finished always."""
    workers.append(WorkerProcess(settings, concurrency=1).start())
    app = clients(settings)
    monitor = CeleryMonitor(settings, app=app)

    short = app.send_task("fleet.sleep", (0.5,))
    assert short.get(timeout=30) == 0.5
    status = _final(monitor, short.id)
    assert 0.5 <= status["runtime"] <= 0.8, status
    assert 0.0 <= status["queue_wait"] < 0.5, status
    sent, received, started, finished = _times(status)
    assert sent <= received <= started <= finished

    blocker = app.send_task("fleet.sleep", (1.0,))
    queued = app.send_task("fleet.add", (1, 2))
    assert queued.get(timeout=30) == 3 and blocker.get(timeout=30) == 1.0
    status = _final(monitor, queued.id)
    assert 0.9 <= status["queue_wait"] <= 2.0, status
    assert status["runtime"] < 0.5
    sent, received, started, finished = _times(status)
    assert sent <= received <= started <= finished
    assert (started - sent).total_seconds() >= 0.9

    blocker = app.send_task("fleet.sleep", (2.0,))
    delayed = app.send_task("fleet.add", (2, 2), countdown=1)
    assert delayed.get(timeout=30) == 4 and blocker.get(timeout=30) == 2.0
    status = _final(monitor, delayed.id)
    assert status["eta"] is not None
    assert 0.8 <= status["queue_wait"] <= 1.8, status
    sent, received, started, finished = _times(status)
    assert sent <= received <= started <= finished
    assert datetime.fromisoformat(status["eta"]) <= started
    assert (started - sent).total_seconds() >= 1.9, "it waited for the 2 s task"

    stats = monitor.get_performance_stats(None, "10m")
    assert stats["success"] == 5 and stats["avg_queue_wait"] is not None


def test_hard_time_limit_is_one_failure_and_the_worker_keeps_serving(settings, workers,
                                                                     clients):
    """fleet.hard_limit (time_limit=1): the pool child is killed, the task ends FAILURE with
    TimeLimitExceeded, counted exactly once although Celery fires task_failure twice in the
    main process, with a runtime of about the limit; the worker then runs the next task."""
    worker = WorkerProcess(settings, concurrency=1).start()
    workers.append(worker)
    app = clients(settings)
    monitor = CeleryMonitor(settings, app=app)

    limited = app.send_task("fleet.hard_limit")
    limited.get(timeout=30, propagate=False)
    assert limited.state == "FAILURE"
    assert type(limited.result).__name__ == "TimeLimitExceeded"
    status = _final(monitor, limited.id, "FAILURE")
    assert status["error"]["type"] == "TimeLimitExceeded"
    assert status["reason"] == "time limit"
    assert 0.9 <= status["runtime"] <= 3.0, status

    after = app.send_task("fleet.add", (2, 3))
    assert after.get(timeout=30) == 5
    assert _final(monitor, after.id)["state"] == "SUCCESS"
    time.sleep(1.0)  # a second count of the failure would have arrived by now
    stats = monitor.get_performance_stats("fleet.hard_limit", "10m")
    assert (stats["failure"], stats["count"], stats["executions"]) == (1, 1, 1)
    assert "Hard time limit (1s) exceeded" in worker.log()
    assert worker.process is not None and worker.process.poll() is None
