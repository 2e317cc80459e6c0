"""The duration baseline each task name is compared with, learned from the store's history.

Method (also in ``docs/alerts.md``):

1. **Same hour, last 7 days.** For each of the previous 7 days, the hourly roll-up
   (``P:h:<name>:<hour>``) of the hour that contained the middle of the current window, that
   many days ago. A day counts when it holds at least ``DAY_MIN_EXECUTIONS`` executions. With at
   least ``MIN_DAYS`` such days and ``WARDEN_ALERT_BASELINE_MIN_SAMPLES`` executions in all,
   the baseline average is the **median of the days' averages** and the baseline p95 the
   median of the days' p95s. The median ignores one odd day (an incident, a deploy), and the
   same hour of day follows a daily cycle: a task that is slow every afternoon is compared
   with other afternoons, not with the night.
2. **Trailing 24 h** otherwise (a young fleet, a new task): everything from 24 h ago up to the
   start of the current window, pooled (average = duration sum / executions, p95 from the
   merged histogram), when it holds at least ``WARDEN_ALERT_BASELINE_MIN_SAMPLES`` executions.
3. Otherwise no baseline (``method="learning"``): the anomaly rules cannot fire for that task.

Cost: one pipelined read per evaluation for every task name whose cached baseline is older than
``CACHE_SECONDS`` (7 hour keys plus the ~24 hour and at most ~120 minute keys of the trailing
window per name); histograms make every percentile mergeable (relative error <= 4.4 %).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import redis

from celery_warden.keys import Keys, hour_of
from celery_warden.read.metrics import Merged
from celery_warden.record.histogram import quantiles
from celery_warden.record.windows import bucket_keys

DAY = 24 * 3600
#: Days looked back for the same hour.
DAYS = 7
#: Days with data needed before the same-hour median is used.
MIN_DAYS = 3
#: Executions in one day's hour for that day to count.
DAY_MIN_EXECUTIONS = 5
#: A learned baseline is reused this long (it moves slowly; reading it costs ~150 keys).
CACHE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Baseline:
    """A task's learned normal: average and p95 run time, how many executions and which method
    gave it (``same_hour_7d``, ``trailing_24h`` or ``learning`` when there is none yet)."""

    avg: float | None
    p95: float | None
    executions: int
    method: str
    days: int = 0

    @property
    def known(self) -> bool:
        return self.avg is not None

    def describe(self) -> dict[str, Any]:
        return {"avg": self.avg, "p95": self.p95, "executions": self.executions,
                "method": self.method, "days": self.days}


def _avg_p95(m: Merged) -> tuple[float | None, float | None, int]:
    done = m.counts.get("done", 0)
    if not done:
        return None, None, 0
    p95 = quantiles(m.hist, (0.95,), m.dmin, m.dmax)[0.95]
    return m.dsum / done, p95, done


def _merge(buckets: list[dict[str, str]]) -> Merged:
    merged = Merged()
    for bucket in buckets:
        merged.add(bucket)
    return merged


class BaselineModel:
    """Learns and caches baselines for task names (thread-safe enough: a lost cache race only
    reads the store twice)."""

    def __init__(self, client: redis.Redis, keys: Keys, min_samples: int) -> None:
        self.redis = client
        self.keys = keys
        self.min_samples = min_samples
        self._cache: dict[tuple[str, int], tuple[float, Baseline]] = {}

    def _plan(self, name: str, now: float, window: int) -> tuple[list[str], list[str]]:
        middle = now - window / 2
        same_hour = [self.keys.hour_bucket(name, hour_of(middle - k * DAY))
                     for k in range(1, DAYS + 1)]
        trailing = bucket_keys(self.keys, name, now - DAY, now - window - 60)
        return same_hour, trailing

    def compute(self, name: str, day_buckets: list[dict[str, str]],
                trailing_buckets: list[dict[str, str]]) -> Baseline:
        """The baseline from already-read buckets (the method in the module docstring)."""
        days = [_avg_p95(_merge([b])) for b in day_buckets]
        usable = [(a, p, n) for a, p, n in days if a is not None and n >= DAY_MIN_EXECUTIONS]
        total = sum(n for _, _, n in usable)
        if len(usable) >= MIN_DAYS and total >= self.min_samples:
            return Baseline(
                avg=statistics.median(a for a, _, _ in usable if a is not None),
                p95=statistics.median(p for _, p, _ in usable if p is not None),
                executions=total, method="same_hour_7d", days=len(usable))
        avg, p95, done = _avg_p95(_merge(trailing_buckets))
        if avg is not None and done >= self.min_samples:
            return Baseline(avg=avg, p95=p95, executions=done, method="trailing_24h")
        return Baseline(avg=None, p95=None, executions=max(total, done), method="learning")

    def baselines(self, names: list[str], window: int,
                  now: float | None = None) -> dict[str, Baseline]:
        """Baselines of several task names: cached ones reused, the rest in one pipeline."""
        now = time.time() if now is None else now
        out: dict[str, Baseline] = {}
        plans: dict[str, tuple[list[str], list[str]]] = {}
        for name in names:
            hit = self._cache.get((name, window))
            if hit is not None and now - hit[0] < CACHE_SECONDS:
                out[name] = hit[1]
            else:
                plans[name] = self._plan(name, now, window)
        if plans:
            pipe = self.redis.pipeline(transaction=False)
            for same_hour, trailing in plans.values():
                for key in (*same_hour, *trailing):
                    pipe.hgetall(key)
            replies = iter(pipe.execute())
            for name, (same_hour, trailing) in plans.items():
                days = [next(replies) for _ in same_hour]
                tail = [next(replies) for _ in trailing]
                out[name] = self.compute(name, days, tail)
                self._cache[(name, window)] = (now, out[name])
        if len(self._cache) > 10_000:
            self._cache.clear()
        return out


__all__ = ["CACHE_SECONDS", "DAYS", "DAY_MIN_EXECUTIONS", "MIN_DAYS", "Baseline",
           "BaselineModel"]
