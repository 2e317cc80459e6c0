"""Per-task-name rows and time series for charts, from the metric buckets.

``rows(window)``: one row per task name (count, failed, failure rate, retried, p50/p95 in ms,
rate per minute) — the task-types table. ``series(name, window)``: points for a chart, one per
step: a minute for windows up to 6 h, 10 minutes for 24 h (from the minute buckets), an hour for
longer windows (from the hourly roll-ups). Each point sums the buckets in its step, so a point
is exact up to the histogram's bucket width (≤ 4.4 % on percentiles).

Queue wait: the buckets keep its sum and count per minute (no histogram), so a point carries
the mean wait (``wait_avg_ms``); ``wait_p95_ms`` is ``null`` until the store keeps a wait
histogram per minute.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from celery_warden.keys import HOUR, MINUTE, Keys, hour_of, minute_of
from celery_warden.read.metrics import FINAL_OUTCOMES, Merged, MetricsReader, Window
from celery_warden.record.histogram import quantiles

#: (longest window, step seconds, hourly buckets?) — the first that fits is used.
STEPS = ((6 * HOUR, MINUTE, False), (24 * HOUR, 10 * MINUTE, False), (None, HOUR, True))
#: Task names summed at most for a fleet-wide series (the most recently seen).
MAX_NAMES = 200


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
    return {
        "ts": ts,
        "succeeded": c.get("success", 0),
        "failed": c.get("failure", 0),
        "retried": c.get("retry", 0),
        "finished": sum(c.get(o, 0) for o in FINAL_OUTCOMES),
        "p50_ms": _ms(q[0.5]), "p95_ms": _ms(q[0.95]), "p99_ms": _ms(q[0.99]),
        "wait_avg_ms": _ms(m.wsum / c["wn"]) if c.get("wn") else None,
        "wait_p95_ms": None,
    }


class SeriesReader:
    """Task-type rows and chart series."""

    def __init__(self, metrics: MetricsReader, client: redis.Redis, keys: Keys) -> None:
        self.metrics = metrics
        self.redis = client
        self.keys = keys

    def row(self, name: str, window: Window) -> dict[str, Any]:
        p = self.metrics.performance(name, window)
        return {
            "name": name, "window": p["window"], "count": p["count"],
            "succeeded": p["success"], "failed": p["failure"],
            "failure_rate_pct": p["failure_rate"], "retried": p["retried"],
            "retries": p["retry"], "p50_ms": _ms(p["p50"]), "p95_ms": _ms(p["p95"]),
            "p99_ms": _ms(p["p99"]), "avg_ms": _ms(p["avg_duration"]),
            "rate_per_min": round(p["throughput_per_minute"], 4),
        }

    def rows(self, window: Window) -> list[dict[str, Any]]:
        """One row per task name seen within the retention, busiest first."""
        out = [self.row(name, window) for name in self.metrics.task_names()]
        return sorted(out, key=lambda r: (-r["count"], r["name"]))

    def known(self, name: str) -> bool:
        return self.redis.zscore(self.keys.names, name) is not None

    def series(self, name: str | None, window: Window) -> dict[str, Any]:
        seconds = self.metrics.window_seconds(window)
        step, hourly = step_of(seconds)
        now = time.time()
        first = (hour_of if hourly else minute_of)(now - seconds)
        first -= first % step
        names = [name] if name else self.metrics.task_names()[:MAX_NAMES]
        width = HOUR if hourly else MINUTE
        starts = list(range(first, int(now) + 1, width))
        pipe = self.redis.pipeline(transaction=False)
        for n in names:
            for s in starts:
                pipe.hgetall(self.keys.hour_bucket(n, s) if hourly
                             else self.keys.minute_bucket(n, s))
        results = pipe.execute()
        merged: dict[int, Merged] = {}
        i = 0
        for _ in names:
            for s in starts:
                bucket = results[i]
                i += 1
                slot = s - (s - first) % step
                m = merged.setdefault(slot, Merged())
                if bucket:
                    m.add(bucket)
        points = [point(ts, merged.get(ts, Merged())) for ts in range(first, int(now) + 1, step)]
        return {"task_name": name, "window": window if isinstance(window, str) else
                f"{seconds}s", "step_seconds": step, "points": points}


__all__ = ["MAX_NAMES", "STEPS", "SeriesReader", "point", "step_of"]
