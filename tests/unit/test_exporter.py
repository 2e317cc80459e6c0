"""The /metrics collector renders celery-exporter's families and Warden's own from the store:
exact values written through the real recorder and store, parsed back with prometheus_client's
text parser; a source that cannot be read leaves its families out and says so."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest
import redis
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from celery_warden.config import celery_config
from celery_warden.dlq.entry import DLQEntry
from celery_warden.dlq.store import DeadLetterQueue
from celery_warden.fleet.breaker import force
from celery_warden.record.buffer import RecordBuffer
from celery_warden.record.store import StoreWriter
from celery_warden.record.totals import RUNTIME_BOUNDS
from celery_warden.serve.export_sources import ExportSources
from celery_warden.serve.exporter import exposition
from celery_warden.settings import WardenSettings


@pytest.fixture
def app(settings: WardenSettings) -> Iterator[Celery]:
    app = Celery("exporter-test", set_as_current=False)
    app.conf.update(celery_config(settings))
    yield app
    app.close()


def scrape(settings: WardenSettings, client: redis.Redis, app: Celery) -> dict[str, object]:
    text = exposition(ExportSources(settings, client, app)).decode()
    assert "None" not in text
    parsed = list(text_string_to_metric_families(text))
    assert len({f.name for f in parsed}) == len(parsed)  # each family in one block
    return {f.name: f for f in parsed}


def samples(family: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for s in family.samples}  # type: ignore[attr-defined]


def _store(settings: WardenSettings, client: redis.Redis) -> None:
    buf = RecordBuffer(settings)
    for _ in range(3):
        buf.total(("succeeded", "svc.a", "celery@alpha", "default", ""), runtime=0.02)
    buf.total(("failed", "svc.a", "celery@alpha", "default", "ValueError"), runtime=0.3)
    buf.total(("sent", "svc.a", "client-host", "default", ""))
    buf.heartbeat("celery@alpha", {"hostname": "celery@alpha", "state": "online",
                                   "active": "2", "concurrency": "4",
                                   "last_seen": f"{time.time():.3f}"})
    batch = buf.take()[0]
    StoreWriter(settings, client).write(batch)


def test_families_values_and_labels(settings: WardenSettings, redis_client: redis.Redis,
                                    app: Celery) -> None:
    """Counters, histogram buckets (Prometheus' default bounds, cumulative, +Inf = count),
    worker gauges by host part, queue length, DLQ by reason, breaker one-hot state."""
    _store(settings, redis_client)
    now = time.time()
    DeadLetterQueue(settings, client=redis_client).add(DLQEntry(
        id="e-1", task_id="e-1", reason="max_retries", name="svc.a", first_failed=now,
        last_failed=now))
    force(settings, "payments-api", "open")

    got = scrape(settings, redis_client, app)
    lbl = (("hostname", "alpha"), ("name", "svc.a"), ("queue_name", "default"))
    assert samples(got["celery_task_succeeded"]) == {("celery_task_succeeded_total", lbl): 3.0}
    assert samples(got["celery_task_failed"]) == {
        ("celery_task_failed_total", (("exception", "ValueError"), *lbl)): 1.0}
    assert samples(got["celery_task_sent"]) == {("celery_task_sent_total", (
        ("hostname", "client-host"), ("name", "svc.a"), ("queue_name", "default"))): 1.0}
    runtime = samples(got["celery_task_runtime"])
    bounds = [*RUNTIME_BOUNDS, math.inf]
    assert len([k for k in runtime if k[0] == "celery_task_runtime_bucket"]) == len(bounds)
    assert runtime[("celery_task_runtime_bucket", (*lbl[:1], ("le", "0.025"), *lbl[1:]))] == 3
    assert runtime[("celery_task_runtime_bucket", (*lbl[:1], ("le", "+Inf"), *lbl[1:]))] == 4
    assert runtime[("celery_task_runtime_count", lbl)] == 4
    assert runtime[("celery_task_runtime_sum", lbl)] == pytest.approx(3 * 0.02 + 0.3)
    assert samples(got["celery_worker_up"]) == {
        ("celery_worker_up", (("hostname", "alpha"),)): 1.0}
    assert samples(got["celery_worker_tasks_active"]) == {
        ("celery_worker_tasks_active", (("hostname", "alpha"),)): 2.0}
    queues = samples(got["celery_queue_length"])
    assert queues[("celery_queue_length", (("queue_name", f"{settings.queue_prefix}default"),))] \
        == 0.0
    assert samples(got["warden_dlq_size"]) == {("warden_dlq_size", (("reason", "max_retries"),)):
                                               1.0}
    state = samples(got["warden_breaker_state"])
    assert state[("warden_breaker_state", (("name", "payments-api"), ("state", "forced_open")))]\
        == 1.0
    assert sum(state.values()) == 1.0
    assert samples(got["warden_recorder_dropped"]) == {("warden_recorder_dropped_total", ()): 0}
    assert set(samples(got["warden_deferrals"])) >= {
        ("warden_deferrals_total", (("reason", "circuit_open"),))}
    assert samples(got["warden_exporter_source_up"]) == {
        ("warden_exporter_source_up", (("source", s),)): 1.0
        for s in ("store", "broker", "alerts")}


def test_counters_never_decrease_and_nothing_is_kept_in_process(
        settings: WardenSettings, redis_client: redis.Redis, app: Celery) -> None:
    """A second collector (another replica, or a restarted server) answers the same counters;
    more events only add to them."""
    _store(settings, redis_client)
    first = samples(scrape(settings, redis_client, app)["celery_task_succeeded"])
    again = samples(scrape(settings, redis_client, app)["celery_task_succeeded"])
    assert first == again
    _store(settings, redis_client)
    later = samples(scrape(settings, redis_client, app)["celery_task_succeeded"])
    assert {k: v * 2 for k, v in first.items()} == later


def test_hostile_label_values_are_escaped(settings: WardenSettings, redis_client: redis.Redis,
                                          app: Celery) -> None:
    """Task names with quotes, backslashes and markup come back from the parser unchanged."""
    name = 'evil"name\\<script>'
    buf = RecordBuffer(settings)
    buf.total(("succeeded", name, "celery@alpha", "default", ""), runtime=0.5)
    batch = buf.take()[0]
    StoreWriter(settings, redis_client).write(batch)
    got = scrape(settings, redis_client, app)
    assert [s.labels["name"] for s in got["celery_task_succeeded"].samples] == [name]
    assert {s.labels["name"] for s in got["celery_task_runtime"].samples} == {name}


def test_broker_down_leaves_queue_families_out(settings_factory, redis_client: redis.Redis,
                                               app: Celery) -> None:
    """The broker unreachable: the scrape still answers (store families present), queue
    families are absent and warden_exporter_source_up{source="broker"} is 0."""
    settings = settings_factory()
    _store(settings, redis_client)
    down = Celery("exporter-down", set_as_current=False)
    down.conf.update(celery_config(settings))
    down.conf.broker_url = "redis://127.0.0.1:1/0"
    down.conf.broker_connection_timeout = 0.5
    try:
        got = scrape(settings, redis_client, down)
    finally:
        down.close()
    assert "celery_queue_length" not in got
    assert samples(got["celery_task_succeeded"])
    up = samples(got["warden_exporter_source_up"])
    assert up[("warden_exporter_source_up", (("source", "broker"),))] == 0.0
    assert up[("warden_exporter_source_up", (("source", "store"),))] == 1.0
