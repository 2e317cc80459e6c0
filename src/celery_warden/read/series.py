"""Time series for charts, from the metric buckets.

``series(name, window)``: points for a chart, one per step: a minute for windows up to 6 h,
10 minutes for 24 h (from the minute buckets), an hour for longer windows (from the hourly
roll-ups). A fleet-wide series (``name=None``) reads the fleet-wide buckets the flusher folds
(:mod:`celery_warden.record.fold`): one key per step whatever the number of task names, and for
every window over 6 h the hourly ones. Each point sums the buckets in its step, so a point is
exact up to the histogram's bucket width (≤ 4.4 % on percentiles), for durations and queue wait
alike (``wait_p50_ms`` … ``wait_p99_ms`` from the queue-wait histogram, ``wait_avg_ms`` its mean).
The task-types rows live in :mod:`celery_warden.read.task_types`.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from celery_warden.keys import HOUR, MINUTE, Keys, hour_of, minute_of
from celery_warden.read.metrics import FINAL_OUTCOMES, Merged, MetricsReader, Window
from celery_warden.record.histogram import quantiles

#: Longest window charted per minute.
MINUTES_UP_TO = 6 * HOUR
#: (longest window, step seconds, hourly buckets?) — the first that fits is used; a fleet-wide
#: series (every task name) longer than MINUTES_UP_TO reads the hourly roll-ups.
STEPS = ((MINUTES_UP_TO, MINUTE, False), (24 * HOUR, 10 * MINUTE, False), (None, HOUR, True))


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000.0, 3)


def step_of(seconds: int) -> tuple[int, bool]:
    for longest, step, hourly in STEPS:
        if longest is None or seconds <= longest:
            return step, hourly
    return HOUR, True  # pragma: no cover - the last entry always fits


def point(ts: int, m: Merged) -> dict[str, Any]:
    c = m.counts
    q = quantiles(m.hist, (0.5, 0.95, 0.99), m.dmin, m.dmax)
    w = quantiles(m.whist, (0.5, 0.95, 0.99))
    return {
        "ts": ts,
        "succeeded": c.get("success", 0),
        "failed": c.get("failure", 0),
        "retried": c.get("retry", 0),
        "finished": sum(c.get(o, 0) for o in FINAL_OUTCOMES),
        "p50_ms": _ms(q[0.5]), "p95_ms": _ms(q[0.95]), "p99_ms": _ms(q[0.99]),
        "wait_avg_ms": _ms(m.wsum / c["wn"]) if c.get("wn") else None,
        "wait_p50_ms": _ms(w[0.5]), "wait_p95_ms": _ms(w[0.95]), "wait_p99_ms": _ms(w[0.99]),
    }


class SeriesReader:
    """Chart series of one task name or of the fleet."""

    def __init__(self, metrics: MetricsReader, client: redis.Redis, keys: Keys) -> None:
        self.metrics = metrics
        self.redis = client
        self.keys = keys

    def series(self, name: str | None, window: Window) -> dict[str, Any]:
        seconds = self.metrics.window_seconds(window)
        step, hourly = step_of(seconds)
        if name is None and seconds > MINUTES_UP_TO:
            step, hourly = HOUR, True  # fleet-wide: hourly roll-ups
        now = time.time()
        first = (hour_of if hourly else minute_of)(now - seconds)
        first -= first % step
        width = HOUR if hourly else MINUTE
        starts = list(range(first, int(now) + 1, width))
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        for s in starts:
            if name is None:
                pipe.hgetall(k.fleet_hour(s) if hourly else k.fleet_minute(s))
            else:
                pipe.hgetall(k.hour_bucket(name, s) if hourly else k.minute_bucket(name, s))
        merged: dict[int, Merged] = {}
        for s, bucket in zip(starts, pipe.execute(), strict=True):
            m = merged.setdefault(s - (s - first) % step, Merged())
            if bucket:
                m.add(bucket)
        points = [point(ts, merged.get(ts, Merged())) for ts in range(first, int(now) + 1, step)]
        return {"task_name": name, "window": window if isinstance(window, str) else
                f"{seconds}s", "step_seconds": step, "points": points}


__all__ = ["STEPS", "SeriesReader", "point", "step_of"]
