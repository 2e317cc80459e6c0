"""The KPIs read only the bucket fields they use (one HMGET per bucket), and their numbers are
exactly those of the full performance summaries they replace: fleet-wide success and retry
rates, and each task name's average duration."""

from __future__ import annotations

import time

import pytest
import redis

from celery_warden.read.monitor import CeleryMonitor
from celery_warden.record.buffer import RecordBuffer
from celery_warden.record.store import StoreWriter
from celery_warden.settings import WardenSettings


def test_kpis_match_the_performance_summaries(settings: WardenSettings,
                                              redis_client: redis.Redis) -> None:
    buf = RecordBuffer(settings)
    now = time.time()
    plan = {"svc.a": [("success", 0.2)] * 7 + [("failure", 1.5)] * 2,
            "svc.b": [("success", 0.05)] * 3 + [("revoked", None)],
            "svc.c": [("retry", 0.4)]}
    for name, outcomes in plan.items():
        for i, (outcome, duration) in enumerate(outcomes):
            buf.observe(name, now - 90 * i, outcome, duration, 0.01, "default",
                        retried=(i == 0 and name == "svc.a"))
    batch = buf.take()[0]
    StoreWriter(settings, redis_client).write(batch)

    monitor = CeleryMonitor(settings)
    try:
        kpis = monitor.get_kpis("1h")
        overall = monitor.get_performance_stats(None, "1h")
        assert overall["count"] == 13
        assert kpis["window"] == "1h"
        assert kpis["task_success_rate"]["value"] == pytest.approx(overall["success_rate"])
        assert kpis["retry_rate"]["value"] == pytest.approx(overall["retry_rate"])
        assert kpis["retry_rate"]["value"] == pytest.approx(100 / 13)
        per_task = kpis["average_task_duration"]["value"]
        assert set(per_task) == set(plan)
        for name in plan:
            expected = monitor.get_performance_stats(name, "1h")["avg_duration"]
            assert per_task[name] == pytest.approx(expected)
    finally:
        monitor.redis.close()
