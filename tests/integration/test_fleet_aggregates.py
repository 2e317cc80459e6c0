"""The aggregates folded at flush time, after a real workload on real workers: the fleet-wide
buckets equal the sum of every name's buckets, the cross-name summaries equal each name's
counters, and queue-wait percentiles are kept."""

from __future__ import annotations

import time

from celery_warden import CeleryMonitor
from celery_warden.keys import Keys
from tests.fold_check import mismatches
from tests.support import WorkerProcess, client_app, wait_for


def test_fleet_bucket_equals_the_sum_over_names_after_a_real_workload(settings, workers,
                                                                      redis_client):
    """Successes, failures and retries of three task names on two worker processes: every
    minute's and hour's fleet bucket and summary agree with the name buckets, and the fleet
    summary counts what the per-name summaries count."""
    start = int(time.time())
    workers += [WorkerProcess(settings, name="a").start(),
                WorkerProcess(settings, name="b").start()]
    app = client_app(settings)
    adds = [app.send_task("fleet.add", (i, 1)) for i in range(300)]
    fails = [app.send_task("fleet.fail", ("x",)) for _ in range(15)]
    retried = [app.send_task("fleet.retry_then_succeed", (2,)) for _ in range(10)]
    assert sum(r.get(timeout=120) for r in adds) == sum(range(300)) + 300
    for r in fails:
        r.get(timeout=60, propagate=False)
    assert [r.get(timeout=60) for r in retried] == [2] * 10
    monitor = CeleryMonitor(settings, app=app)
    names = ["fleet.add", "fleet.fail", "fleet.retry_then_succeed"]
    wait_for(lambda: monitor.get_performance_stats(None, "15m")["count"] >= 325, 20, 0.2,
             "workload recorded fleet-wide")
    time.sleep(1.0)  # any late or doubled flush lands within a few intervals
    assert mismatches(redis_client, Keys(settings.key_prefix), monitor.task_names(),
                      start - 60, int(time.time())) == []
    fleet = monitor.get_performance_stats(None, "15m")
    per = [monitor.get_performance_stats(n, "15m") for n in names]
    assert fleet["count"] == sum(p["count"] for p in per) == 325
    assert (fleet["success"], fleet["failure"], fleet["retry"]) == (310, 15, 20)
    assert fleet["queue_wait_p50"] is not None
    assert fleet["queue_wait_p50"] <= fleet["queue_wait_p95"] <= fleet["queue_wait_p99"]
    assert monitor.metrics.counts(("success", "failure"), "15m") == {
        "fleet.add": {"success": 300, "failure": 0},
        "fleet.fail": {"success": 0, "failure": 15},
        "fleet.retry_then_succeed": {"success": 10, "failure": 0}}
    monitor.redis.close()
