"""Warden's Redis goes away mid-run: tasks keep running, records are buffered, bounded, resumed.

The store is a redis-server of this test's own (``EmbeddedRedis`` with an AOF), killed by pid and
restarted on the same port and data directory; the Celery broker and result backend stay on the
session Redis, so only monitoring loses its store. The publisher here has no Warden of its own,
so every record and every counted drop comes from the worker.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from celery_warden import CeleryMonitor, celery_config
from celery_warden.embedded import EmbeddedRedis
from celery_warden.settings import WardenSettings
from tests.conftest import make_settings
from tests.support import WorkerProcess, delete_prefix, wait_for

pytestmark = pytest.mark.slow

BUFFER = 100  # the smallest WARDEN_BUFFER_SIZE allowed
BEFORE, DURING, AFTER = 200, 600, 20


class Store:
    """The test's own store Redis, restartable on the same port and data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.server = EmbeddedRedis(data_dir, appendonly=True)
        self.server.start()

    @property
    def url(self) -> str:
        return self.server.url

    def kill(self) -> None:
        self.server.kill()

    def restart(self) -> None:
        self.server = EmbeddedRedis(self.server.data_dir, port=self.server.port, appendonly=True)
        self.server.start()

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "store")
    yield s
    s.stop()


@pytest.fixture
def outage_settings(store: Store, redis_url: str) -> Iterator[WardenSettings]:
    s = make_settings(store.url, CELERY_BROKER_URL=redis_url, CELERY_RESULT_BACKEND=redis_url,
                      WARDEN_BUFFER_SIZE=BUFFER)
    yield s
    client = redis.Redis.from_url(redis_url)
    try:
        delete_prefix(client, s.broker_key_prefix)
    finally:
        client.close()


def _run(app: Celery, n: int, offset: int) -> tuple[list, float]:
    started = time.monotonic()
    results = [app.send_task("fleet.add", (offset + i, 1)) for i in range(n)]
    values = [r.get(timeout=60) for r in results]
    assert values == [offset + i + 1 for i in range(n)], "every task still returns its result"
    return results, time.monotonic() - started


def test_tasks_survive_a_store_outage_and_recording_resumes(outage_settings, store, workers):
    """With the store Redis SIGKILLed, 600 tasks still all succeed at normal speed on a worker
    that does not crash; each process keeps at most WARDEN_BUFFER_SIZE records and counts what it
    drops. After a restart on the same port and data dir: data from before survives (AOF), new
    tasks are recorded again, the newest buffered records are written, per-minute counts are
    exact, dropped > 0 is reported and the worker logs 'Redis reachable again'."""
    s = outage_settings
    worker = WorkerProcess(s, concurrency=2).start()
    workers.append(worker)
    app = Celery("outage-client", set_as_current=False)
    app.conf.update(celery_config(s))
    monitor = CeleryMonitor(s, app=app)
    try:
        before, before_time = _run(app, BEFORE, 0)
        wait_for(lambda: all(monitor.get_task_status(r.id)["state"] == "SUCCESS"
                             for r in before), 15, 0.2, "records written before the outage")
        # Kill while the pool is idle, so no task batch can be half-acknowledged by the store.
        time.sleep(0.5)
        store.kill()

        during, during_time = _run(app, DURING, 10_000)
        assert during_time < 60, f"{DURING} tasks took {during_time:.1f}s during the outage"
        assert worker.process is not None and worker.process.poll() is None, "worker alive"
        wait_for(lambda: "cannot write to Redis" in worker.log(), 10, 0.2, "outage warning")

        store.restart()
        # Written before the kill and acknowledged, so in the AOF: still there after restart.
        assert monitor.get_task_status(before[0].id)["state"] == "SUCCESS"
        after, _ = _run(app, AFTER, 20_000)
        wait_for(lambda: all(monitor.get_task_status(r.id)["state"] == "SUCCESS"
                             for r in after), 30, 0.2, "recording resumed after the restart")
        # The newest records a process buffered during the outage were kept and written.
        assert monitor.get_task_status(during[-1].id)["state"] == "SUCCESS"
        wait_for(lambda: monitor.get_recorder_stats().get("dropped", 0) > 0, 30, 0.2,
                 "dropped records reported")
        wait_for(lambda: "Redis reachable again" in worker.log(), 30, 0.2, "recovery warning")
        # Per-minute counters are buffered separately from task records: none are lost.
        total = BEFORE + DURING + AFTER
        wait_for(lambda: monitor.get_performance_stats("fleet.add", "10m")["success"] >= total,
                 30, 0.2, f"{total} successes counted")
        time.sleep(0.5)
        assert monitor.get_performance_stats("fleet.add", "10m")["success"] == total

        dropped = monitor.get_recorder_stats()["dropped"]
        statuses = [monitor.get_task_status(r.id) for r in during]
        recorded = [st for st in statuses if st["known"]]
        # Every task of the outage is either recorded in full or counted as dropped.
        assert len(recorded) + dropped == DURING, (len(recorded), dropped)
        assert all(st["state"] == "SUCCESS" and st["name"] == "fleet.add" and st["started_at"]
                   and st["runtime"] is not None for st in recorded)
        # Per process: up to BUFFER carried from failed flushes plus up to BUFFER newer records
        # in the live buffer (2 pool children here).
        assert len(recorded) <= 2 * 2 * BUFFER, len(recorded)
        assert worker.process.poll() is None, "worker still running after the outage"
        entry = next(w for w in monitor.get_worker_health()["workers"]
                     if w["hostname"] == worker.hostname)
        assert entry["status"] == "online" and entry["pid"] == worker.pid
        print(f"timing: {BEFORE} tasks before in {before_time:.2f}s, {DURING} during outage in "
              f"{during_time:.2f}s, dropped={dropped}, recorded during={len(recorded)}")
    finally:
        app.close()
