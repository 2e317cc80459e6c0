"""Records survive a killed process: the whole worker SIGKILLed mid-run, twice.

Ground truth is kept outside Warden: every execution of ``fleet.record_order`` appends its label
to a Redis list as the body's last step. What the pool children had buffered when they were
killed comes back from their spool files at the next worker start on this host.
"""

from __future__ import annotations

import os
import signal
import time

from celery_warden import CeleryMonitor
from celery_warden.keys import Keys
from celery_warden.read.totals import read_totals
from tests.support import WorkerProcess, client_app, wait_for

TASKS = 600


def kill_group(worker: WorkerProcess) -> None:
    """SIGKILL the worker's whole process group (it runs in a session of its own)."""
    assert worker.process is not None
    os.killpg(worker.pid, signal.SIGKILL)
    worker.process.wait(10)
    worker.kill()  # reap, close the log


def test_whole_worker_killed_twice_mid_run_counts_stay_exact(settings_factory, workers,
                                                             tmp_path, redis_client):
    settings = settings_factory(WARDEN_SPOOL_DIR=str(tmp_path / "spool"),
                                WARDEN_VISIBILITY_TIMEOUT=3, WARDEN_FLUSH_INTERVAL=1.0)
    truth = f"{settings.key_prefix}:order"
    app = client_app(settings)
    results = [app.send_task("fleet.record_order", (f"t{i}",)) for i in range(TASKS)]

    def executed() -> int:
        return int(redis_client.llen(truth))

    for stop_at in (TASKS // 4, TASKS // 2):
        w = WorkerProcess(settings).start()
        workers.append(w)
        wait_for(lambda n=stop_at: executed() >= n, 60, 0.02, f"{stop_at} tasks executed")
        kill_group(w)
        time.sleep(settings.visibility_timeout + 0.5)  # unacknowledged messages come back
    w = WorkerProcess(settings).start()
    workers.append(w)
    assert [r.get(timeout=120) for r in results] == [f"t{i}" for i in range(TASKS)]
    labels = list(redis_client.lrange(truth, 0, -1))
    assert set(labels) == {f"t{i}" for i in range(TASKS)}
    monitor = CeleryMonitor(settings, app=app)
    keys = Keys(settings.key_prefix)

    def succeeded() -> int:
        got, _ = read_totals(redis_client, keys)
        return sum(c.value for c in got if c.event == "succeeded"
                   and c.name == "fleet.record_order")

    # Executions that finished (a kill between a body's last step and its postrun would make
    # the truth one higher: microseconds out of the run, and never seen here).
    wait_for(lambda: succeeded() >= len(labels), 30, 0.2,
             f"{len(labels)} successes counted (spools replayed)")
    time.sleep(2.5)  # any double count would arrive within a couple of flush intervals
    assert succeeded() == len(labels)
    stats = monitor.get_performance_stats("fleet.record_order", "1h")
    assert stats["success"] == len(labels)
    states = {monitor.get_task_status(r.id)["state"] for r in results}
    assert states == {"SUCCESS"}, "no task left STARTED (or without a record)"
    w.stop()
    left = [p.name for p in (tmp_path / "spool").rglob("*") if p.is_file()]
    assert left == [], "replayed spools and a clean stop leave no files"
