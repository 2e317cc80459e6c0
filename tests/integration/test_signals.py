"""Which process runs which Celery signal under prefork, and what a lost pool child does.

``signals.py`` relies on this table (worker main vs pool child); these tests pin it against the
installed Celery with a probe (``FLEET_SIGNAL_PROBE=1`` in tests/apps/fleet.py) that writes
``<signal> <task id> <pid>`` from inside each handler.
"""

from __future__ import annotations

import os
import signal
import time
from collections import defaultdict
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


def _probe_log(redis_client, settings) -> dict[str, dict[str, list[int]]]:
    """signal -> task id ('-' for worker signals) -> pids, in order."""
    table: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for line in redis_client.lrange(f"{settings.key_prefix}:signals", 0, -1):
        name, task_id, pid = line.split()
        table[name][task_id].append(int(pid))
    return table


def _status(monitor: CeleryMonitor, task_id: str, state: str) -> dict[str, Any]:
    return wait_for(lambda: (st := monitor.get_task_status(task_id))["state"] == state and st,
                    15, 0.05, f"{task_id} in state {state}")


def test_which_process_runs_which_signal_under_prefork(settings, workers, clients,
                                                       redis_client):
    """task_received, task_revoked, worker_init/ready/shutting_down and the hard-time-limit
    task_failure (fired twice in Celery 5.7) run in the worker main process; task_prerun,
    task_postrun, task_success, task_retry, the task_failure of a raising task and
    worker_process_init run in a pool child; Warden's record carries that child's pid and the
    received time the main process stamped into the request."""
    worker = WorkerProcess(settings, concurrency=1, extra_env={"FLEET_SIGNAL_PROBE": "1"})
    workers.append(worker.start())
    app = clients(settings)
    monitor = CeleryMonitor(settings, app=app)

    ok = app.send_task("fleet.add", (1, 2))
    assert ok.get(timeout=30) == 3
    bad = app.send_task("fleet.fail", ("probe",))
    bad.get(timeout=30, propagate=False)
    retried = app.send_task("fleet.retry_then_succeed", (1,))
    assert retried.get(timeout=30) == 1
    limited = app.send_task("fleet.hard_limit")
    limited.get(timeout=30, propagate=False)
    assert limited.state == "FAILURE"
    revoked = app.send_task("fleet.add", (0, 0), countdown=2)
    _status(monitor, revoked.id, "RECEIVED")  # held by the main process until its ETA
    revoked.revoke()
    _status(monitor, revoked.id, "REVOKED")
    ok_status = _status(monitor, ok.id, "SUCCESS")
    assert worker.stop() == 0

    main = worker.pid
    log = _probe_log(redis_client, settings)
    children = set(log["worker_process_init"]["-"])
    assert children and main not in children
    assert len(children) >= 2, "the child ended by the hard time limit was replaced"

    def only(name: str, task_id: str = "-") -> set[int]:
        pids = log[name][task_id]
        assert pids, f"{name} for {task_id} never fired"
        return set(pids)

    for name in ("worker_init", "worker_ready", "worker_shutting_down"):
        assert only(name) == {main}, name
    for task in (ok, bad, retried, limited, revoked):
        assert only("task_received", task.id) == {main}
    for task in (ok, bad, retried, limited):
        assert only("task_prerun", task.id) <= children
    for task in (ok, bad, retried):
        assert only("task_postrun", task.id) <= children
    assert only("task_success", ok.id) <= children
    assert only("task_success", retried.id) <= children
    assert only("task_retry", retried.id) <= children
    assert only("task_failure", bad.id) <= children
    assert log["task_failure"][limited.id] == [main, main], "hard limit: twice, in main"
    assert only("task_revoked", revoked.id) == {main}
    assert not log["task_prerun"][revoked.id], "a revoked task never reaches a child"

    # Warden's record: written by the child (its pid), with the main process's received stamp.
    assert ok_status["pid"] in children and ok_status["pid"] in log["task_prerun"][ok.id]
    received = datetime.fromisoformat(ok_status["received_at"])
    assert datetime.fromisoformat(ok_status["sent_at"]) <= received
    assert received <= datetime.fromisoformat(ok_status["started_at"])


def test_killed_pool_child_task_is_redelivered_and_recorded_once(settings, workers, clients):
    """SIGKILL of the pool child running a 2 s task: with acks_late + reject_on_worker_lost
    the message is requeued (no task_failure), a new child runs it to SUCCESS, and Warden
    shows SUCCESS from the new child's pid with no failure counted for the lost run."""
    worker = WorkerProcess(settings, concurrency=1)
    workers.append(worker.start())
    app = clients(settings)
    monitor = CeleryMonitor(settings, app=app)

    task = app.send_task("fleet.sleep", (2.0,))
    started = _status(monitor, task.id, "STARTED")
    victim = started["pid"]
    assert victim != worker.pid and victim in worker.children()
    time.sleep(0.3)  # well inside the 2 s body
    os.kill(victim, signal.SIGKILL)

    assert task.get(timeout=30) == 2.0
    final = _status(monitor, task.id, "SUCCESS")
    assert final["pid"] != victim and final["pid"] in worker.children()
    assert final["retries"] == 0, "a redelivery is not a retry"
    assert final["error"] is None
    assert 2.0 <= final["runtime"] <= 2.5
    time.sleep(0.5)
    stats = monitor.get_performance_stats("fleet.sleep", "10m")
    assert (stats["success"], stats["failure"], stats["count"]) == (1, 0, 1)
    assert "WorkerLostError" in worker.log() or "exited prematurely" in worker.log()
    assert worker.process is not None and worker.process.poll() is None
