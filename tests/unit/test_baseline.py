"""The learned duration baseline, on synthetic history written through the real recorder and
store: a doubled duration fires (average and p95), a daily cycle does not, a young task falls
back to the trailing 24 h and a new one waits until it has enough samples."""

from __future__ import annotations

import time

import pytest

from celery_warden.alerts.baseline import DAY
from celery_warden.alerts.rulefile import load_rules
from celery_warden.alerts.sources import Sources
from celery_warden.keys import HOUR, hour_of
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.record.recorder import Recorder

#: Durations of one hour's executions, relative to that hour's normal (mean exactly 1).
PATTERN = [0.9, 0.95, 1.0, 1.05, 1.1, 1.0, 0.97, 1.03]


def daily_cycle(hours_from_peak: int) -> float:
    """1 s around the daily peak (this hour, +-3 h), 0.1 s the rest of the day."""
    distance = min(hours_from_peak % 24, 24 - hours_from_peak % 24)
    return 1.0 if distance <= 3 else 0.1


def write_history(recorder: Recorder, name: str, peak: int, days: int = 7,
                  hours: range = range(24)) -> None:
    for k in range(1, days + 1):
        for h in hours:
            start = peak - k * DAY + h * HOUR
            for i, factor in enumerate(PATTERN):
                recorder.observe(name, start + 60 + i * 420, "success",
                                 duration=daily_cycle(h) * factor)


def write_recent(recorder: Recorder, name: str, now: float, normal: float) -> None:
    for i in range(16):
        recorder.observe(name, now - 600 + i * 30, "success",
                         duration=normal * PATTERN[i % len(PATTERN)])


@pytest.fixture
def history(settings):
    """Seven days of a daily cycle for three tasks, flushed through a real Recorder. "Now" is
    the middle of the previous hour (the evaluation's clock), so the recent window lies in one
    hour whatever the wall clock says."""
    now = hour_of(time.time()) - HOUR + HOUR / 2
    peak = hour_of(now)
    recorder = Recorder(settings)
    write_history(recorder, "t.cycle", peak)
    write_history(recorder, "t.doubled", peak)
    write_history(recorder, "t.young", peak, days=1, hours=range(16, 24))
    write_recent(recorder, "t.cycle", now, daily_cycle(0))
    write_recent(recorder, "t.doubled", now, 2 * daily_cycle(0))
    write_recent(recorder, "t.young", now, daily_cycle(0))
    write_recent(recorder, "t.new", now, 1.0)
    assert recorder.flush()
    recorder.stop()
    return settings, now


def samples(settings, rule_name, now=None):
    rules = [r for r in load_rules(settings) if r.name == rule_name]
    monitor = CeleryMonitor(settings)
    clock = time.time if now is None else (lambda: now)
    try:
        found = Sources(settings, monitor, clock).collect(rules)[rule_name]
    finally:
        monitor.redis.close()
    assert not isinstance(found, Exception), found
    return {s.subject: s for s in found}, rules[0]


def test_doubled_duration_fires_and_daily_cycle_does_not(history):
    """At the daily peak the same-hour median of 7 days says 1 s, so 1 s now is normal
    (ratio 1) while 2 s now is twice the baseline: the anomaly rule (>= 2x) breaches for the
    doubled task only. A trailing-24h average (~0.36 s) would have paged on the cycle."""
    settings, now = history
    found, rule = samples(settings, "CeleryTaskDurationAnomaly", now)
    cycle, doubled = found["t.cycle"], found["t.doubled"]
    assert cycle.extra["method"] == "same_hour_7d"
    assert cycle.value == pytest.approx(1.0, abs=0.01) and not rule.breached(cycle.value)
    assert doubled.value == pytest.approx(2.0, abs=0.01) and rule.breached(doubled.value)
    assert doubled.extra["baseline"] == pytest.approx(1.0, abs=0.01)
    monitor = CeleryMonitor(settings)
    day = monitor.get_performance_stats("t.cycle", "24h")["avg_duration"]
    monitor.redis.close()
    assert cycle.extra["current"] / day > 2  # what a naive baseline would have compared


def test_p95_anomaly_uses_the_same_method(history):
    """The p95 rule compares the window's p95 with the median of the days' p95s."""
    settings, now = history
    found, rule = samples(settings, "CeleryTaskP95Anomaly", now)
    assert not rule.breached(found["t.cycle"].value)
    assert rule.breached(found["t.doubled"].value)
    assert found["t.doubled"].extra["method"] == "same_hour_7d"


def test_young_task_uses_trailing_24h_and_new_task_has_no_baseline(history):
    """Eight hours of history (< 3 days at this hour) fall back to the trailing 24 h; a task
    with no history has no baseline, so the anomaly rule has no sample to judge."""
    settings, now = history
    found, _ = samples(settings, "CeleryTaskDurationAnomaly", now)
    assert found["t.young"].extra["method"] == "trailing_24h"
    assert "t.new" not in found


def test_minimum_samples_before_a_baseline_is_learned(settings_factory):
    """Below WARDEN_ALERT_BASELINE_MIN_SAMPLES executions, even a same-hour history teaches
    nothing."""
    settings = settings_factory(WARDEN_ALERT_BASELINE_MIN_SAMPLES=10_000)
    now = time.time()
    recorder = Recorder(settings)
    write_history(recorder, "t.sparse", hour_of(now), days=3, hours=range(0, 2))
    write_recent(recorder, "t.sparse", now, 5.0)
    assert recorder.flush()
    recorder.stop()
    found, _ = samples(settings, "CeleryTaskDurationAnomaly")
    assert "t.sparse" not in found
