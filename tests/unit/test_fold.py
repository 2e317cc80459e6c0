"""The aggregates folded at flush time (record/fold.py): fleet-wide buckets, cross-name
summaries, the queue-wait histogram, and the readers that use them."""

from __future__ import annotations

import math
import random
import time

import pytest

from celery_warden.keys import HOUR, Keys, hour_of, minute_of
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.read.series import SeriesReader
from celery_warden.read.task_types import TaskTypesReader
from celery_warden.record.histogram import RELATIVE_ERROR
from celery_warden.record.recorder import Recorder
from tests.fold_check import mismatches


def manual(settings, made: list[Recorder]) -> Recorder:
    r = Recorder(settings)
    r.stop()  # no background thread: every flush is explicit
    made.append(r)
    return r


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def test_fleet_buckets_and_summaries_equal_the_sum_over_names(settings, redis_client,
                                                              recorders):
    """Three processes record four names over minutes of two hours, flushing at different
    times: every fleet bucket equals the sum of that minute's (hour's) name buckets, field by
    field (counts, both histograms, sums, min, max), and every summary field equals its name
    bucket's counter."""
    rng = random.Random(7)
    procs = [manual(settings, recorders) for _ in range(3)]
    names = ["f.a", "f.b", "f.c", "f.d:with:colons"]
    base = hour_of(time.time()) - HOUR - 300  # five minutes before an hour boundary
    for i in range(900):
        r = procs[i % 3]
        outcome = rng.choice(["success"] * 6 + ["failure", "retry", "revoked", "duplicate"])
        timed = outcome != "revoked"
        r.observe(rng.choice(names), base + rng.uniform(0, 600), outcome,
                  rng.lognormvariate(-3, 1.5) if timed else None,
                  rng.expovariate(2.0) if rng.random() < 0.8 else None,
                  "default", retried=rng.random() < 0.1)
        if i % 170 == 0:
            r.flush()
    for r in procs:
        assert r.flush() is True
    keys = Keys(settings.key_prefix)
    assert mismatches(redis_client, keys, names, int(base), int(base) + 600) == []
    fleet = redis_client.hgetall(keys.fleet_minute(minute_of(base + 60)))
    assert any(k.startswith("w") and k[1:].isdigit() for k in fleet), "wait histogram folded"
    assert 0 < redis_client.ttl(keys.fleet_minute(minute_of(base + 60))) \
        <= settings.metrics_retention
    assert settings.metrics_retention < redis_client.ttl(keys.summary_hour(hour_of(base))) \
        <= settings.rollup_retention


def test_fleet_performance_and_kpis_read_the_folded_data(settings, recorders):
    """performance(None) (fleet buckets) and the KPIs (summaries) give the same counts as
    adding up every name's own performance summary."""
    r = manual(settings, recorders)
    now = time.time()
    plan = {"k.a": 40, "k.b": 25, "k.c": 3}
    for name, n in plan.items():
        for i in range(n):
            r.observe(name, now - 30 * i, "failure" if i % 5 == 0 else "success",
                      0.01 * (i + 1), 0.002 * i, retried=i % 7 == 0)
    assert r.flush() is True
    m = CeleryMonitor(settings)
    try:
        per = [m.get_performance_stats(name, "1h") for name in plan]
        fleet = m.get_performance_stats(None, "1h")
        for field in ("count", "success", "failure", "retried", "executions"):
            assert fleet[field] == sum(p[field] for p in per), field
        assert fleet["max_duration"] == max(p["max_duration"] for p in per)
        kpis = m.get_kpis("1h")
        assert kpis["task_success_rate"]["value"] == pytest.approx(fleet["success_rate"])
        assert kpis["retry_rate"]["value"] == pytest.approx(fleet["retry_rate"])
        for p in per:
            assert kpis["average_task_duration"]["value"][p["task_name"]] \
                == pytest.approx(p["avg_duration"])
    finally:
        m.redis.close()


def test_queue_wait_percentiles_per_name_fleet_and_series(settings, recorders):
    """Queue waits of known values: p50/p95/p99 within the histogram's relative error of the
    exact nearest-rank values, for one name, for the fleet, and in the chart series."""
    r = manual(settings, recorders)
    now = time.time()
    rng = random.Random(3)
    waits = {"w.a": [rng.uniform(0.001, 0.2) for _ in range(200)],
             "w.b": [rng.uniform(1.0, 30.0) for _ in range(50)]}
    for name, values in waits.items():
        for wait in values:
            r.observe(name, now - 5, "success", 0.01, wait)
    assert r.flush() is True
    m = CeleryMonitor(settings)
    try:
        everything = waits["w.a"] + waits["w.b"]
        for name, values in [("w.a", waits["w.a"]), (None, everything)]:
            stats = m.get_performance_stats(name, "15m")
            for q in (0.5, 0.95, 0.99):
                assert stats[f"queue_wait_p{round(q * 100)}"] == pytest.approx(
                    nearest_rank(values, q), rel=RELATIVE_ERROR * 1.01), (name, q)
        series = SeriesReader(m.metrics, m.redis, m.keys).series(None, "15m")
        busy = [p for p in series["points"] if p["finished"]]
        assert len(busy) == 1 and busy[0]["finished"] == 250
        assert busy[0]["wait_p95_ms"] == pytest.approx(
            nearest_rank(everything, 0.95) * 1000, rel=RELATIVE_ERROR * 1.01)
    finally:
        m.redis.close()


def test_task_types_are_sorted_and_paginated_with_percentiles_for_the_page(settings,
                                                                           recorders):
    """Five names, two rows a page: the busiest first, ``next_cursor`` until the last page;
    each row's sparkline adds up to its count; sorting by name ascending works too."""
    r = manual(settings, recorders)
    now = time.time()
    counts = {"t.one": 1, "t.two": 2, "t.three": 3, "t.four": 4, "t.five": 5}
    for name, n in counts.items():
        for i in range(n):
            r.observe(name, now - 70 * i, "success", 0.1 * n)
    assert r.flush() is True
    m = CeleryMonitor(settings)
    try:
        reader = TaskTypesReader(m.metrics, m.redis, m.keys)
        seen, cursor, pages = [], 0, 0
        while True:
            page = reader.page("1h", "count", True, 2, cursor)
            pages += 1
            assert page["total"] == 5
            for row in page["items"]:
                assert sum(row["spark"]) == row["count"] == counts[row["name"]]
                assert row["p95_ms"] == pytest.approx(100 * counts[row["name"]],
                                                      rel=RELATIVE_ERROR * 1.01)
            seen += [row["name"] for row in page["items"]]
            if page["next_cursor"] is None:
                break
            cursor = int(page["next_cursor"])
        assert pages == 3
        assert seen == sorted(counts, key=lambda n: -counts[n])
        by_name = reader.page("1h", "name", False, 200, 0)["items"]
        assert [row["name"] for row in by_name] == sorted(counts)
        with pytest.raises(ValueError):
            reader.page("1h", "p95")
    finally:
        m.redis.close()
