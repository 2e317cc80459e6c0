"""Defect 1 of the core issue: a batch applied twice after a partial or unacknowledged flush.

A batch of more than MAX_TASKS_PER_CALL tasks goes to Redis in several script calls; when a later
call fails, or when Redis runs a call but its reply is lost (a timeout after execution), the
recorder keeps the batch and tries again. Every count must still be applied exactly once.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from celery_warden.dlq.groups import describe
from celery_warden.read.errors import ErrorGroups
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.record.chunks import MAX_TASKS_PER_CALL
from celery_warden.record.order import RANK_FINAL
from celery_warden.record.recorder import Recorder
from celery_warden.record.store import StoreWriter
from celery_warden.settings import WardenSettings


class FlakyScript:
    """Wraps the store's flush script: chosen calls fail before reaching Redis (``lost=False``)
    or run in Redis and then lose their reply (``lost=True``), as a timeout after execution."""

    def __init__(self, script: Any, fail_calls: set[int], lost: bool) -> None:
        self.script = script
        self.fail_calls = fail_calls
        self.lost = lost
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        failing = self.calls in self.fail_calls
        if failing and not self.lost:
            raise redis.ConnectionError("injected: connection dropped before the call")
        result = self.script(*args, **kwargs)
        if failing:
            raise redis.TimeoutError("injected: reply lost after Redis ran the script")
        return result


def flaky_recorder(settings: WardenSettings, made: list[Recorder], fail_calls: set[int],
                   lost: bool) -> tuple[Recorder, list[FlakyScript]]:
    scripts: list[FlakyScript] = []

    def factory() -> StoreWriter:
        writer = StoreWriter(settings)
        flaky = FlakyScript(writer._script, fail_calls, lost)
        writer._script = flaky  # type: ignore[assignment]
        scripts.append(flaky)
        return writer

    r = Recorder(settings, writer_factory=factory)
    r.stop()  # no background thread: every flush is explicit
    made.append(r)
    return r, scripts


def finish(r: Recorder, n: int, outcome: str, name: str = "t.work") -> None:
    now = time.time()
    for i in range(n):
        task_id = f"{outcome}-{i}"
        r.task(task_id, static={"name": name},
               attempt={"state": outcome.upper(), "finished": now, "runtime": 0.01},
               rank=RANK_FINAL)
        r.observe(name, now, outcome, 0.01)
        if outcome == "failure":
            try:
                raise ValueError("order 42 has no line items")
            except ValueError as exc:
                r.error(describe(exc), name, task_id, now)


def test_chunked_batch_whose_second_call_fails_counts_each_success_once(settings, recorders):
    """300 successes go in two script calls; the 2nd fails once → 300, not 600."""
    assert MAX_TASKS_PER_CALL < 300
    r, scripts = flaky_recorder(settings, recorders, {2}, lost=False)
    finish(r, 300, "success")
    assert r.flush() is False
    assert r.flush() is True
    stats = CeleryMonitor(settings).get_performance_stats("t.work", "5m")
    assert (stats["count"], stats["success"]) == (300, 300)
    assert scripts[0].calls >= 3


def test_chunked_failures_count_once_in_buckets_and_error_groups(settings, recorders,
                                                                 redis_client):
    """250 failures, 2nd call fails once → the failure bucket and the error group say 250."""
    r, _ = flaky_recorder(settings, recorders, {2}, lost=False)
    finish(r, 250, "failure")
    assert r.flush() is False
    assert r.flush() is True
    stats = CeleryMonitor(settings).get_performance_stats("t.work", "5m")
    assert stats["failure"] == 250
    groups = ErrorGroups(settings, client=redis_client).list(10)
    assert [g["count"] for g in groups] == [250]


def test_reply_lost_after_redis_ran_the_batch_is_not_applied_again(settings, recorders,
                                                                    redis_client):
    """One call (150 tasks, no chunking) runs in Redis but its reply is lost → still 150."""
    r, _ = flaky_recorder(settings, recorders, {1}, lost=True)
    finish(r, 150, "failure")
    assert r.flush() is False
    assert r.flush() is True
    stats = CeleryMonitor(settings).get_performance_stats("t.work", "5m")
    assert (stats["count"], stats["failure"]) == (150, 150)
    assert [g["count"] for g in ErrorGroups(settings, client=redis_client).list(10)] == [150]


def test_fleet_bucket_and_summary_are_applied_once_when_a_reply_is_lost(settings, recorders,
                                                                        redis_client):
    """The fleet-wide bucket and the cross-name summary ride in the same numbered chunk: a
    chunk Redis ran but whose reply was lost adds them once (150, not 300)."""
    r, _ = flaky_recorder(settings, recorders, {1}, lost=True)
    finish(r, 150, "failure")
    assert r.flush() is False
    assert r.flush() is True
    monitor = CeleryMonitor(settings)
    assert monitor.get_performance_stats(None, "5m")["failure"] == 150
    assert monitor.get_kpis("5m")["average_task_duration"]["value"]["t.work"] \
        == pytest.approx(0.01)
    assert monitor.metrics.counts(("failure",), "5m") == {"t.work": {"failure": 150}}
    monitor.redis.close()


def test_new_records_after_a_failed_flush_are_written_too(settings, recorders, redis_client):
    """What arrives between the failed and the next flush is applied once as well."""
    r, _ = flaky_recorder(settings, recorders, {1}, lost=True)
    finish(r, 10, "success")
    assert r.flush() is False
    finish(r, 5, "retry", name="t.other")
    assert r.flush() is True
    monitor = CeleryMonitor(settings)
    assert monitor.get_performance_stats("t.work", "5m")["success"] == 10
    assert monitor.get_performance_stats("t.other", "5m")["retry"] == 5
