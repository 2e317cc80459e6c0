"""Per-task-name rows and time series for charts, from the metric buckets.

``rows(window)``: one row per task name (count, failed, failure rate, retried, p50/p95 in ms,
rate per minute) — the task-types table. ``series(name, window)``: points for a chart, one per
step: a minute for windows up to 6 h, 10 minutes for 24 h (from the minute buckets), an hour for
longer windows (from the hourly roll-ups) — and for every window over 6 h of a fleet-wide series,
which sums every task name (one key per name and hour instead of one per name and minute).
Each point sums the buckets in its step, so a point is exact up to the histogram's bucket width
(≤ 4.4 % on percentiles). ``rows`` reads every name's buckets in one pipelined round trip.

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
from celery_warden.record.windows import bucket_keys
from celery_warden.units import percent

#: Longest window charted per minute.
MINUTES_UP_TO = 6 * HOUR
#: (longest window, step seconds, hourly buckets?) — the first that fits is used; a fleet-wide
#: series (every task name) longer than MINUTES_UP_TO reads the hourly roll-ups.
STEPS = ((MINUTES_UP_TO, MINUTE, False), (24 * HOUR, 10 * MINUTE, False), (None, HOUR, True))
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


def _row(name: str, label: str, seconds: int, m: Merged) -> dict[str, Any]:
    c = m.counts
    finished = sum(c.get(o, 0) for o in FINAL_OUTCOMES)
    done = c.get("done", 0)
    q = quantiles(m.hist, (0.5, 0.95, 0.99), m.dmin, m.dmax)
    return {
        "name": name, "window": label, "count": finished,
        "succeeded": c.get("success", 0), "failed": c.get("failure", 0),
        "failure_rate_pct": percent(c.get("failure", 0), finished),
        "retried": c.get("retried", 0), "retries": c.get("retry", 0),
        "p50_ms": _ms(q[0.5]), "p95_ms": _ms(q[0.95]), "p99_ms": _ms(q[0.99]),
        "avg_ms": _ms(m.dsum / done) if done else None,
        "rate_per_min": round(finished * 60.0 / seconds, 4),
    }


class SeriesReader:
    """Task-type rows and chart series."""

    def __init__(self, metrics: MetricsReader, client: redis.Redis, keys: Keys) -> None:
        self.metrics = metrics
        self.redis = client
        self.keys = keys

    def row(self, name: str, window: Window) -> dict[str, Any]:
        return self.rows(window, [name])[0]

    def rows(self, window: Window, names: list[str] | None = None) -> list[dict[str, Any]]:
        """One row per task name (every name seen within the retention by default), busiest
        first: all their buckets in one pipelined round trip."""
        seconds = self.metrics.window_seconds(window)
        label = window if isinstance(window, str) else f"{seconds}s"
        end = time.time()
        names = self.metrics.task_names() if names is None else names
        pipe = self.redis.pipeline(transaction=False)
        sizes = []
        for name in names:
            keys = bucket_keys(self.keys, name, end - seconds, end)
            sizes.append(len(keys))
            for key in keys:
                pipe.hgetall(key)
        results = iter(pipe.execute())
        out = []
        for name, size in zip(names, sizes, strict=True):
            m = Merged()
            for _ in range(size):
                m.add(next(results))
            out.append(_row(name, label, seconds, m))
        return sorted(out, key=lambda r: (-r["count"], r["name"]))

    def known(self, name: str) -> bool:
        return self.redis.zscore(self.keys.names, name) is not None

    def series(self, name: str | None, window: Window) -> dict[str, Any]:
        seconds = self.metrics.window_seconds(window)
        step, hourly = step_of(seconds)
        if name is None and seconds > MINUTES_UP_TO:
            step, hourly = HOUR, True  # fleet-wide: hourly roll-ups (one key per name-hour)
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
