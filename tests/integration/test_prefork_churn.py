"""Fork safety in a real worker: prefork replaces its children constantly while the main
process's heartbeat and flusher threads run, and no child ever hangs on an inherited lock."""

from __future__ import annotations

import time

import pytest

from celery_warden.keys import Keys
from tests.support import WorkerProcess, client_app, wait_for

pytestmark = pytest.mark.slow

TASKS = 200
CONCURRENCY = 2


def test_children_replaced_after_every_task_while_heartbeats_and_flushes_run(
        settings_factory, workers, redis_client):
    """``--max-tasks-per-child=1`` forks a new child for every task while the main process
    beats and flushes every 0.05 s: 200 tasks all complete, each in its own child, every one
    is recorded SUCCESS, no child is reported as never starting ("Timed out waiting for UP")
    and no child is left hanging at the end."""
    settings = settings_factory(WARDEN_HEARTBEAT_INTERVAL=0.05, WARDEN_FLUSH_INTERVAL=0.05)
    worker = WorkerProcess(settings, concurrency=CONCURRENCY,
                           extra_args=["--max-tasks-per-child=1"]).start()
    workers.append(worker)
    app = client_app(settings)
    keys = Keys(settings.key_prefix)
    results = [app.send_task("fleet.pid") for _ in range(TASKS)]
    deadline = time.monotonic() + 240
    pids = [r.get(timeout=max(1.0, deadline - time.monotonic())) for r in results]
    assert len(set(pids)) == TASKS, "every task ran in a child of its own"
    assert worker.pid not in pids

    def recorded() -> bool:
        pipe = redis_client.pipeline(transaction=False)
        for r in results:
            pipe.hget(keys.task(r.id), "state")
        return pipe.execute() == ["SUCCESS"] * TASKS

    wait_for(recorded, 30, 0.5, "every task recorded SUCCESS")
    beat = redis_client.hget(keys.worker(worker.hostname), "last_seen")
    assert beat is not None and time.time() - float(beat) < 5, "the heartbeat kept running"
    log = worker.log()
    assert "Timed out waiting for UP message" not in log
    assert "monitoring handler" not in log, "no Warden handler failed"
    wait_for(lambda: len(worker.children()) <= CONCURRENCY, 15, 0.2,
             "no more children than the pool size (none left hanging)")
    assert worker.stop() == 0
