"""The spec's fleet self-test for the reference app: the eight areas its "Testing" section lists.

``python test_celery_monitoring.py`` (repository root) runs these against a live fleet of
``app/worker`` (started with the spec's own commands); each check sends real tasks and verifies
both Celery's outcome and what Warden recorded about it. The library does not import the
reference app: the runner passes its Celery app in and the checks use task names.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from celery import group

from celery_warden.read.monitor import CeleryMonitor
from celery_warden.selftest.report import Check, CheckFailed, expect

#: Seconds one check may wait for its tasks.
TIMEOUT = 60.0
#: Tasks in the batch check.
BATCH = 20


class ReferenceChecks:
    """Checks over the reference app's ``example.*`` tasks."""

    def __init__(self, app: Any, monitor: CeleryMonitor, timeout: float = TIMEOUT) -> None:
        self.app = app
        self.monitor = monitor
        self.timeout = timeout

    def checks(self) -> list[Check]:
        return [
            ("basic task execution", self.basic),
            ("retry mechanisms", self.retries),
            ("time limits", self.time_limits),
            ("batch processing", self.batch),
            ("worker health", self.worker_health),
            ("error tracking", self.error_tracking),
            ("performance monitoring", self.performance),
            ("queue management", self.queues),
        ]

    def final(self, task_id: str) -> dict[str, Any]:
        """Warden's record of a task once it reached a final state."""
        deadline = time.monotonic() + self.timeout
        while True:
            status = self.monitor.get_task_status(task_id)
            if status["state"] in ("SUCCESS", "FAILURE", "REVOKED", "REJECTED"):
                return status
            if time.monotonic() > deadline:
                raise CheckFailed(f"task {task_id} still {status['state']} after "
                                  f"{self.timeout:g}s")
            time.sleep(0.05)

    def basic(self) -> str:
        result = self.app.send_task("example.add", (5, 3))
        value = result.get(timeout=self.timeout)
        expect(value == 8, f"example.add(5, 3) returned {value!r}")
        status = self.final(result.id)
        expect(status["state"] == "SUCCESS" and status["runtime"] is not None,
               f"recorded {status['state']} without a runtime")
        return (f"example.add(5, 3) = 8 on {status['worker']}, recorded SUCCESS in "
                f"{status['runtime'] * 1000:.1f} ms")

    def retries(self) -> str:
        key = uuid.uuid4().hex[:8]
        result = self.app.send_task("example.eventually", (key, 2))
        value = result.get(timeout=self.timeout)
        status = self.final(result.id)
        expect(status["state"] == "SUCCESS" and status["retries"] == 2,
               f"recorded {status['state']} after {status['retries']} retries")
        delays = [h.get("delay") for h in status["history"]]
        expect(len(delays) == 2 and all(d is not None for d in delays),
               f"retry history {status['history']!r}")
        return (f"{value!r} after 2 retries (ConnectionError), backoff "
                + ", ".join(f"{d:.2f}s" for d in delays))

    def time_limits(self) -> str:
        result = self.app.send_task("example.slow", (5.0,), soft_time_limit=1, time_limit=3)
        result.get(timeout=self.timeout, propagate=False)
        status = self.final(result.id)
        error = (status.get("error") or {}).get("type")
        expect(status["state"] == "FAILURE" and error == "SoftTimeLimitExceeded",
               f"recorded {status['state']} {error}")
        entry = self._dlq_entry(result.id)
        expect(entry.reason == "soft_time_limit", f"DLQ reason {entry.reason}")
        return f"example.slow(5) stopped at its 1 s soft limit; DLQ entry {entry.id}"

    def batch(self) -> str:
        before = self.monitor.get_performance_stats("example.add", "5m")["success"]
        job = group(self.app.signature("example.add", (i, i)) for i in range(BATCH))
        values = job.apply_async().get(timeout=self.timeout)
        expect(values == [2 * i for i in range(BATCH)], f"group returned {values!r}")
        deadline = time.monotonic() + self.timeout
        while (after := self.monitor.get_performance_stats("example.add", "5m")["success"]) \
                < before + BATCH:
            expect(time.monotonic() < deadline, f"counted {after - before} of {BATCH}")
            time.sleep(0.1)
        return f"a group of {BATCH} example.add ran and all {BATCH} were counted"

    def worker_health(self) -> str:
        health = self.monitor.get_worker_health()
        online = [w for w in health["workers"] if w["status"] == "online"]
        expect(bool(online), "no worker sent a heartbeat recently")
        w = online[0]
        return (f"{len(online)} online; {w['hostname']} heartbeat {w['heartbeat_age']:.1f}s "
                f"ago, {w['active']}/{w['concurrency']} busy, queues {', '.join(w['queues'])}")

    def error_tracking(self) -> str:
        order = int(time.time()) % 100_000
        result = self.app.send_task("example.always_fails", (order,))
        result.get(timeout=self.timeout, propagate=False)
        status = self.final(result.id)
        expect(status["state"] == "FAILURE", f"recorded {status['state']}")
        groups = self.monitor.get_error_groups(50, "5m")
        group_ = next((g for g in groups if "example.always_fails" in g["task_names"]), None)
        expect(group_ is not None, "no error group names example.always_fails")
        assert group_ is not None
        entry = self._dlq_entry(result.id)
        return (f"ValueError grouped ({group_['fingerprint']}, {group_['count']} in total); "
                f"DLQ entry {entry.id} ({entry.reason})")

    def performance(self) -> str:
        stats = self.monitor.get_performance_stats("example.add", "5m")
        expect(stats["count"] >= BATCH + 1, f"only {stats['count']} example.add counted")
        expect(stats["p95"] is not None and stats["avg_duration"] is not None,
               "no durations")
        return (f"example.add: {stats['count']} in 5m, avg {stats['avg_duration'] * 1000:.1f} "
                f"ms, p95 {stats['p95'] * 1000:.1f} ms, success {stats['success_rate']:.1f}%")

    def queues(self) -> str:
        depths = self.monitor.get_queue_depths()
        expect(bool(depths) and all(d is not None for d in depths.values()),
               f"queue depths {depths!r}")
        result = self.app.send_task("example.urgent_ping", queue=self._queue("high_priority"),
                                    priority=9)
        expect(result.get(timeout=self.timeout) == "pong", "urgent_ping did not answer")
        status = self.final(result.id)
        expect(status["queue"] == self._queue("high_priority") and status["priority"] == 9,
               f"recorded queue {status['queue']} priority {status['priority']}")
        return ", ".join(f"{q}={d}" for q, d in depths.items()) + \
            "; a priority-9 task ran from high_priority"

    def _queue(self, logical: str) -> str:
        return f"{self.monitor.settings.queue_prefix}{logical}"

    def _dlq_entry(self, task_id: str) -> Any:
        deadline = time.monotonic() + self.timeout
        while (entry := self.monitor.dlq.get(task_id)) is None:
            expect(time.monotonic() < deadline, f"no DLQ entry for {task_id}")
            time.sleep(0.1)
        return entry


__all__ = ["ReferenceChecks"]
