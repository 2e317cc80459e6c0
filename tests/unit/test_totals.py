"""Cumulative totals for Prometheus: exact once per event, no TTL, bounded per task name."""

from __future__ import annotations

import math

import pytest

from celery_warden.keys import Keys
from celery_warden.read.totals import read_totals
from celery_warden.record import totals
from celery_warden.record.recorder import Recorder
from tests.unit.test_flush_idempotency import flaky_recorder


class FakeRun:
    """The facts a pool child hands the recorder (the real ``Run`` needs a Celery request)."""

    def __init__(self, name: str, worker: str, queue: str, wait: float | None) -> None:
        self.flushed = False
        self.retries = 0
        self.defers = 0
        self.name = name
        self.worker = worker
        self.queue = queue
        self.wait = wait
        self.counts_received = True  # a delivery the worker's main process stamped

    def start_fields(self) -> tuple[dict[str, object], dict[str, object], int, int]:
        return {"name": self.name}, {"state": "STARTED"}, 0, 0


def run_tasks(r: Recorder, n: int, outcome: str, *, name: str = "t.work",
              worker: str = "celery@host-a", queue: str = "q1", exc: str = "",
              runtime: float = 0.02, wait: float = 0.3) -> None:
    for i in range(n):
        run = FakeRun(name, worker, queue, wait)
        tid = f"{name}-{outcome}-{worker}-{i}"
        r.begin(tid, run)
        final: dict[str, object] = {"state": outcome.upper(), "finished": 1.0}
        if exc:
            final["exc_type"] = exc
        r.end(tid, run, name, final, 5, outcome, 1.0e9, runtime, wait)  # type: ignore[arg-type]


def counters_of(redis_client, settings) -> dict[tuple[str, ...], int]:
    counters, _ = read_totals(redis_client, Keys(settings.key_prefix))
    return {(c.event, c.name, c.hostname, c.queue, c.exception): c.value for c in counters}


def test_counts_and_histograms_are_exact_and_use_prometheus_bounds(settings, recorders,
                                                                  redis_client):
    r, _ = flaky_recorder(settings, recorders, set(), lost=False)
    run_tasks(r, 7, "success", runtime=0.02, wait=0.3)
    run_tasks(r, 3, "failure", exc="ValueError", runtime=3.0, wait=700.0)
    r.total(("received", "t.work", "celery@host-a", "q1", ""))  # as a main-side outcome counts it
    r.total(("rejected", totals.UNKNOWN, "host-a", "q1", ""))
    assert r.flush() is True
    got = counters_of(redis_client, settings)
    assert got == {
        ("started", "t.work", "host-a", "q1", ""): 10,
        ("succeeded", "t.work", "host-a", "q1", ""): 7,
        ("failed", "t.work", "host-a", "q1", "ValueError"): 3,
        ("received", "t.work", "host-a", "q1", ""): 10 + 1,  # with each end, and the other
        ("rejected", "_unknown", "host-a", "q1", ""): 1,
    }
    _, hists = read_totals(redis_client, Keys(settings.key_prefix))
    by_metric = {h.metric: h for h in hists}
    rt = by_metric["runtime"]
    assert [b for b, _ in rt.buckets] == [*totals.RUNTIME_BOUNDS, math.inf]
    assert rt.count == 10 and rt.sum == pytest.approx(7 * 0.02 + 3 * 3.0)
    assert dict(rt.buckets)[0.025] == 7 and dict(rt.buckets)[2.5] == 7
    assert dict(rt.buckets)[5.0] == 10 and rt.buckets[-1] == (math.inf, 10)
    qw = by_metric["queue_wait"]
    assert [b for b, _ in qw.buckets] == [*totals.QUEUE_WAIT_BOUNDS, math.inf]
    assert dict(qw.buckets)[0.5] == 7 and dict(qw.buckets)[600.0] == 7
    assert dict(qw.buckets)[1800.0] == 10 and qw.count == 10
    assert (qw.name, qw.hostname, qw.queue) == ("t.work", "host-a", "q1")
    # Stored as one field per label set, cumulative counts then the sum (nothing per bucket).
    keys, sep = Keys(settings.key_prefix), totals.SEP
    assert redis_client.exists(keys.totals_hists) == 0
    stored = redis_client.hget(keys.totals_packed, f"runtime{sep}t.work{sep}host-a{sep}q1")
    assert stored.split()[:15] == ["0", "0"] + ["7"] * 9 + ["10"] * 4
    assert float(stored.split()[15]) == rt.sum


def test_a_chunk_applied_twice_is_counted_once(settings, recorders, redis_client):
    """The script runs but its reply is lost: the flush is tried again, totals add once."""
    r, scripts = flaky_recorder(settings, recorders, {1}, lost=True)
    run_tasks(r, 250, "success")  # two chunks; the totals ride in the first
    assert r.flush() is False
    assert r.flush() is True
    assert scripts[0].calls >= 3
    got = counters_of(redis_client, settings)
    assert got[("succeeded", "t.work", "host-a", "q1", "")] == 250
    _, hists = read_totals(redis_client, Keys(settings.key_prefix))
    assert sorted(h.count for h in hists) == [250, 250]


def test_totals_have_no_ttl_and_survive_bucket_expiry(settings, recorders, redis_client):
    r, _ = flaky_recorder(settings, recorders, set(), lost=False)
    run_tasks(r, 5, "success")
    assert r.flush() is True
    keys = Keys(settings.key_prefix)
    for key in (keys.totals_counters, keys.totals_packed, keys.totals_meta):
        assert redis_client.ttl(key) == -1, key
    buckets = list(redis_client.scan_iter(f"{settings.key_prefix}:m:*"))
    buckets += list(redis_client.scan_iter(f"{settings.key_prefix}:h:*"))
    assert buckets and all(redis_client.ttl(b) > 0 for b in buckets)
    redis_client.delete(*buckets)  # what expiry does
    run_tasks(r, 2, "success")
    assert r.flush() is True
    assert counters_of(redis_client, settings)[("succeeded", "t.work", "host-a", "q1", "")] == 7


def test_label_sets_and_exceptions_are_capped_per_name_with_overflow_counted(
        settings, recorders, redis_client, monkeypatch):
    monkeypatch.setattr(totals, "MAX_SETS_PER_NAME", 4)
    monkeypatch.setattr(totals, "MAX_EXCEPTIONS_PER_NAME", 2)
    r, _ = flaky_recorder(settings, recorders, set(), lost=False)
    for i in range(6):  # 6 hosts x (started, succeeded) label sets, and 6 runtime histograms
        run_tasks(r, 1, "success", worker=f"celery@h{i}")
    for exc in ("E1", "E2", "E3", "E4"):
        r.total(("failed", "t.work", "celery@h0", "q1", exc))
    assert r.flush() is True
    got = counters_of(redis_client, settings)
    assert sum(v for k, v in got.items() if k[0] == "succeeded") == 6
    assert sum(v for k, v in got.items() if k[0] == "started") == 6
    assert sum(v for k, v in got.items() if k[0] == "failed") == 4
    assert {k[4] for k in got if k[0] == "failed"} <= {"E1", "E2", totals.OTHER}
    assert ("failed", "t.work", "h0", "q1", totals.OTHER) in got or any(
        k[2] == totals.OTHER for k in got if k[0] == "failed")
    assert any(k[2] == totals.OTHER for k in got)
    per_name = redis_client.hget(Keys(settings.key_prefix).totals_meta, "n:t.work")
    assert int(per_name) <= 4
    overflow = int(redis_client.hget(Keys(settings.key_prefix).totals_meta, "overflow"))
    assert overflow > 0
    _, hists = read_totals(redis_client, Keys(settings.key_prefix))
    assert sum(h.count for h in hists if h.metric == "runtime") == 6


def test_hostile_labels_are_cleaned_and_none_never_appears(settings, recorders, redis_client):
    r, _ = flaky_recorder(settings, recorders, set(), lost=False)
    r.total(("sent", "t.work", None, None, ""))  # type: ignore[arg-type]
    r.total(("sent", "<script>\x1f[i]\n" + "x" * 10_000, "celery@h", "q", ""))
    assert r.flush() is True
    got = counters_of(redis_client, settings)
    assert ("sent", "t.work", "", "", "") in got
    assert all("None" not in k for k in got)
    long = [k for k in got if k[1].startswith("<script>")]
    assert len(long) == 1 and len(long[0][1]) == totals.MAX_LABEL
    assert "\x1f" not in long[0][1] and "\n" not in long[0][1]


def test_nothing_stored_reads_as_empty(settings, redis_client):
    assert read_totals(redis_client, Keys(settings.key_prefix)) == ([], [])
