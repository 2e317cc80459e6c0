"""The stream's poller turns the store's state into change events: a task's state change (once
per change, not per update), a worker going online, the DLQ's size, a breaker's state, and the
KPIs — read with the real store writer, DLQ and breaker on a real Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from celery_warden.alerts.view import AlertsView
from celery_warden.dlq.entry import DLQEntry
from celery_warden.dlq.store import DeadLetterQueue
from celery_warden.fleet.breaker import force
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.record.buffer import RecordBuffer
from celery_warden.record.order import RANK_FINAL, RANK_STARTED
from celery_warden.record.store import StoreWriter
from celery_warden.serve.stream_poll import TASK_SAMPLE, StreamPoller
from celery_warden.settings import WardenSettings


@pytest.fixture
def poller(settings: WardenSettings) -> Iterator[StreamPoller]:
    monitor = CeleryMonitor(settings)
    poller = StreamPoller(monitor, AlertsView(settings, monitor.redis))
    poller.since = time.time() - 5
    yield poller
    monitor.redis.close()


def _write(settings: WardenSettings, poller: StreamPoller, fill: dict[str, dict]) -> None:
    buf = RecordBuffer(settings)
    for task_id, fields in fill.items():
        rank = RANK_FINAL if fields["state"] in ("SUCCESS", "FAILURE") else RANK_STARTED
        buf.task(task_id, static={"name": "svc.work", "queue": "default"},
                 attempt={**fields, "worker": "celery@alpha"}, rank=rank)
    batch = buf.take()[0]
    StoreWriter(settings, poller.redis).write(batch)


def _names(events: list[tuple[str, dict]]) -> list[str]:
    return [e for e, _ in events]


def test_task_changes_workers_and_kpis(settings: WardenSettings, poller: StreamPoller) -> None:
    """The first poll sends KPIs (and remembers them for new listeners); a task's STARTED and
    then SUCCESS are each sent once; an update without a state change is quiet; a worker whose
    heartbeat appears is reported online."""
    first = poller.poll()
    assert "kpis" in _names(first)
    assert "kpis" in poller.latest and "ts" in poller.latest["kpis"]
    assert "task_success_rate" in poller.latest["kpis"]

    buf = RecordBuffer(settings)
    buf.heartbeat("celery@alpha", {"hostname": "celery@alpha", "state": "online",
                                   "active": "1", "concurrency": "2",
                                   "last_seen": f"{time.time():.3f}"})
    batch = buf.take()[0]
    StoreWriter(settings, poller.redis).write(batch)
    _write(settings, poller, {"t-1": {"state": "STARTED", "started": str(time.time())}})
    events = poller.poll(now=time.time() + 3)
    tasks = [d for e, d in events if e == "task"]
    assert tasks == [{"id": "t-1", "name": "svc.work", "state": "STARTED", "queue": "default",
                      "worker": "celery@alpha", "ts": tasks[0]["ts"]}]
    assert ("worker", {"hostname": "celery@alpha", "status": "online",
                       "ts": pytest.approx(time.time() + 3, abs=2)}) in events

    _write(settings, poller, {"t-1": {"state": "SUCCESS", "finished": str(time.time())}})
    assert [(d["id"], d["state"]) for e, d in poller.poll() if e == "task"] == [("t-1", "SUCCESS")]
    assert [e for e in _names(poller.poll()) if e == "task"] == []


def test_tasks_are_sampled_newest_first_under_load(settings: WardenSettings,
                                                   poller: StreamPoller) -> None:
    """More changes than TASK_SAMPLE in one interval: only the newest TASK_SAMPLE are sent,
    oldest of them first, so the stream's cost does not grow with the fleet's throughput."""
    n = TASK_SAMPLE + 30
    for i in range(n):  # one flush each, so every record has its own update time
        _write(settings, poller, {f"t-{i:03d}": {"state": "STARTED"}})
    ids = [d["id"] for e, d in poller.tasks(time.time()) if e == "task"]
    assert ids == [f"t-{i:03d}" for i in range(n - TASK_SAMPLE, n)]


def test_dlq_and_breaker_changes(settings: WardenSettings, poller: StreamPoller) -> None:
    """A new DLQ entry sends the size and the count per reason; a breaker forced open sends
    its new state (only changes after the first look are sent)."""
    poller.poll()
    dlq = DeadLetterQueue(settings, client=poller.redis)
    now = time.time()
    dlq.add(DLQEntry(id="e-1", task_id="e-1", reason="max_retries", name="svc.work",
                     first_failed=now, last_failed=now))
    force(settings, "payments-api", "open")
    events = poller.poll(now=time.time() + 3)
    assert ("dlq", {"size": 1, "by_reason": {"max_retries": 1}}) in events
    assert ("breaker", {"name": "payments-api", "state": "forced_open"}) in events
    assert not [e for e in _names(poller.poll(now=time.time() + 6)) if e in ("dlq", "breaker")]


def test_a_record_flushed_late_is_still_sent(settings: WardenSettings,
                                             poller: StreamPoller) -> None:
    """A record whose update time is older than one already sent (its process flushed it
    later) is still reported, once."""
    now = time.time()
    _write(settings, poller, {"t-new": {"state": "STARTED"}})
    assert [d["id"] for e, d in poller.poll() if e == "task"] == ["t-new"]
    buf = RecordBuffer(settings)
    buf.task("t-late", static={"name": "svc.work", "queue": "default"},
             attempt={"state": "SUCCESS", "worker": "celery@alpha"}, rank=RANK_FINAL)
    batch = buf.take()[0]
    batch.tasks["t-late"].updated = now - 1.0  # recorded a second before, flushed only now
    StoreWriter(settings, poller.redis).write(batch)
    assert [(d["id"], d["state"]) for e, d in poller.poll() if e == "task"] == [
        ("t-late", "SUCCESS")]
    assert [e for e in _names(poller.poll()) if e == "task"] == []
