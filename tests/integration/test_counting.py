"""Counting is exact across processes: every outcome is recorded once, none lost or doubled."""

from __future__ import annotations

import time

from celery_warden import CeleryMonitor
from tests.support import WorkerProcess, client_app, wait_for


def test_two_thousand_tasks_on_two_workers_are_counted_exactly(settings, workers):
    """2,000 tasks over two worker processes → exactly 2,000 successes, one record each."""
    workers += [WorkerProcess(settings, name="a").start(), WorkerProcess(settings, name="b")
                .start()]
    app = client_app(settings)
    results = [app.send_task("fleet.add", (i, 1)) for i in range(2000)]
    assert sum(r.get(timeout=120) for r in results) == sum(range(2000)) + 2000
    monitor = CeleryMonitor(settings, app=app)

    def counted():
        stats = monitor.get_performance_stats("fleet.add", "10m")
        return stats if stats["success"] >= 2000 else None

    stats = wait_for(counted, 15, 0.2, "2000 successes recorded")
    time.sleep(1.0)  # any double count would arrive within a few flush intervals
    stats = monitor.get_performance_stats("fleet.add", "10m")
    assert stats["success"] == 2000
    assert stats["failure"] == 0 and stats["retry"] == 0
    assert stats["count"] == 2000 and stats["executions"] == 2000
    hosts = {monitor.get_task_status(r.id)["worker"] for r in results[::50]}
    assert hosts == {w.hostname for w in workers}, "both workers took part"
    assert all(monitor.get_task_status(r.id)["state"] == "SUCCESS" for r in results[::97])


def test_failures_retries_and_revokes_are_counted_exactly(settings, workers):
    """Failures, retries (3 per task) and revokes each land in their own counter exactly."""
    workers.append(WorkerProcess(settings).start())
    app = client_app(settings)
    fails = [app.send_task("fleet.fail", ("x",)) for _ in range(30)]
    retried = [app.send_task("fleet.retry_then_succeed", (3,)) for _ in range(20)]
    revoked = [app.send_task("fleet.add", (1, 1), countdown=4) for _ in range(10)]
    for r in fails:
        r.get(timeout=60, propagate=False)
    assert [r.get(timeout=60) for r in retried] == [3] * 20
    wait_for(lambda: all(CeleryMonitor(settings, app=app).get_task_status(r.id)["state"]
                         == "RECEIVED" for r in revoked), 20, 0.2, "countdown tasks received")
    for r in revoked:
        r.revoke()
    monitor = CeleryMonitor(settings, app=app)
    wait_for(lambda: monitor.get_performance_stats("fleet.add", "10m")["revoked"] >= 10, 20,
             0.2, "revokes recorded")
    time.sleep(1.0)
    assert monitor.get_performance_stats("fleet.fail", "10m")["failure"] == 30
    retry_stats = monitor.get_performance_stats("fleet.retry_then_succeed", "10m")
    assert (retry_stats["success"], retry_stats["retry"]) == (20, 60)
    assert monitor.get_performance_stats("fleet.add", "10m")["revoked"] == 10
    status = monitor.get_task_status(fails[0].id)
    assert status["state"] == "FAILURE"
    assert status["error"] == {"type": "ValueError", "message": "x"}
    status = monitor.get_task_status(retried[0].id)
    assert status["state"] == "SUCCESS" and status["retries"] == 3
    assert monitor.get_task_status(revoked[0].id)["state"] == "REVOKED"
