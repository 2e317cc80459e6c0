"""What the rules look at: one sample per subject per metric, read through the read side.

The evaluator calls :meth:`Sources.collect` once per evaluation. Each family of metrics is read
once however many rules use it (task metrics once per window, in one pipeline for every task
name), so an evaluation costs a handful of round trips: the metric buckets, the baselines (mostly
cached), worker heartbeats, the broker's queue depths and oldest messages, the DLQ size, the
breakers and the recorder counters.

A family that cannot be read (the broker is down) is reported as an error for the rules that
use it, and the evaluator keeps those rules' alerts as they are — missing data never resolves
an alert nor fires one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis

from celery_warden.alerts.baseline import BaselineModel
from celery_warden.alerts.rules import Rule
from celery_warden.read.metrics import FINAL_OUTCOMES, Merged
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.record.histogram import quantiles
from celery_warden.record.windows import bucket_keys
from celery_warden.settings import WardenSettings

#: Subject of a fleet-wide sample (aggregated rules, DLQ size, recorder drops).
FLEET = "*"
#: Counter samples (recorder drops) are kept this long: a window longer than this compares
#: with the oldest sample kept.
SERIES_KEEP = 25 * 3600


@dataclass(slots=True)
class Sample:
    """One value of one metric for one subject; ``extra`` feeds annotations (baseline, ...)."""

    subject: str
    value: float
    extra: dict[str, Any] = field(default_factory=dict)


def _epoch(iso_text: str | None) -> float | None:
    if not iso_text:
        return None
    try:
        return datetime.fromisoformat(iso_text).timestamp()
    except ValueError:
        return None


def combine(parts: Iterable[Merged]) -> Merged:
    """Several task names' merged buckets as one (a fleet-wide value)."""
    total = Merged()
    for m in parts:
        for k, v in m.counts.items():
            total.counts[k] = total.counts.get(k, 0) + v
        for i, n in m.hist.items():
            total.hist[i] = total.hist.get(i, 0) + n
        total.dsum += m.dsum
        total.wsum += m.wsum
        if m.dmin is not None:
            total.dmin = m.dmin if total.dmin is None else min(total.dmin, m.dmin)
        if m.dmax is not None:
            total.dmax = m.dmax if total.dmax is None else max(total.dmax, m.dmax)
    return total


class Sources:
    """Reads every metric the rules need, once per evaluation."""

    def __init__(self, settings: WardenSettings, monitor: CeleryMonitor,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.monitor = monitor
        self.redis: redis.Redis = monitor.redis
        self.keys = monitor.keys
        self.clock = clock
        self.baseline = BaselineModel(self.redis, self.keys,
                                      settings.alert_baseline_min_samples)

    # -- one evaluation ------------------------------------------------------------------------
    def collect(self, rules: list[Rule]) -> dict[str, list[Sample] | Exception]:
        """Samples per rule name (or the exception that kept its data from being read)."""
        now = self.clock()
        cache: dict[Any, Any] = {}
        out: dict[str, list[Sample] | Exception] = {}
        for rule in rules:
            if not rule.enabled:
                continue
            try:
                out[rule.name] = [s for s in self._samples(rule, now, cache)
                                  if rule.aggregate or s.subject == FLEET
                                  or rule.covers(s.subject)]
            except Exception as exc:
                out[rule.name] = exc
        return out

    def _once(self, cache: dict[Any, Any], key: Any, read: Callable[[], Any]) -> Any:
        if key not in cache:
            try:
                cache[key] = read()
            except Exception as exc:
                cache[key] = exc
        found = cache[key]
        if isinstance(found, Exception):
            raise found
        return found

    def _samples(self, rule: Rule, now: float, cache: dict[Any, Any]) -> list[Sample]:
        metric = rule.metric
        if metric.startswith("task_"):
            return self._task(rule, now, cache)
        if metric == "queue_depth":
            depths = self._once(cache, "depths", self.monitor.get_queue_depths)
            return [Sample(q, float(d)) for q, d in depths.items() if d is not None]
        if metric == "queue_oldest_age":
            ages = self._once(cache, "ages", self.monitor.get_queue_latency)
            return [Sample(q, float(a["age"])) for q, a in ages.items() if a["age"] is not None]
        if metric in ("worker_offline_seconds", "worker_utilization"):
            return self._workers(metric, self._once(cache, "workers",
                                                    self.monitor.get_worker_health))
        if metric == "dlq_size":
            return [Sample(FLEET, float(self._once(cache, "dlq", self.monitor.dlq.size)))]
        if metric == "breaker_open_seconds":
            breakers = self._once(cache, "breakers", self.monitor.get_circuit_breakers)
            return [Sample(b["name"], round(now - since, 3))
                    for b in breakers
                    if b["state"] == "open" and (since := _epoch(b["since"])) is not None]
        if metric == "recorder_drops":
            dropped = self._once(cache, "dropped",
                                 lambda: self.monitor.get_recorder_stats().get("dropped", 0))
            return [Sample(FLEET, self._increase("recorder_dropped", dropped, now,
                                                 rule.window, cache))]
        raise ValueError(f"no source for metric {metric!r}")

    # -- families --------------------------------------------------------------------------------
    def _workers(self, metric: str, health: dict[str, Any]) -> list[Sample]:
        out = []
        for w in health["workers"]:
            if metric == "worker_offline_seconds":
                age = float(w["heartbeat_age"])
                if w["status"] == "offline" and age <= self.settings.alert_worker_forget:
                    out.append(Sample(w["hostname"], round(age, 1), {"state": w["state"]}))
            elif w["status"] == "online" and w["concurrency"]:
                out.append(Sample(w["hostname"], 100.0 * w["active"] / w["concurrency"]))
        return out

    def _windows(self, window: int, now: float, cache: dict[Any, Any]) -> dict[str, Merged]:
        def read() -> dict[str, Merged]:
            names = self.monitor.task_names()
            pipe = self.redis.pipeline(transaction=False)
            plan = {n: bucket_keys(self.keys, n, now - window, now) for n in names}
            for keys in plan.values():
                for key in keys:
                    pipe.hgetall(key)
            replies = iter(pipe.execute())
            merged: dict[str, Merged] = {}
            for name, keys in plan.items():
                m = merged[name] = Merged()
                for _ in keys:
                    m.add(next(replies))
            return merged
        return self._once(cache, ("tasks", window), read)  # type: ignore[no-any-return]

    def _task(self, rule: Rule, now: float, cache: dict[Any, Any]) -> list[Sample]:
        merged = self._windows(rule.window, now, cache)
        subjects = {n: m for n, m in merged.items() if rule.covers(n)}
        if rule.aggregate:
            total = combine(subjects.values())
            subjects = {FLEET: total}
        baselines = {}
        if rule.metric in ("task_duration_ratio", "task_p95_ratio"):
            baselines = self.baseline.baselines(list(subjects), rule.window, now)
        out = []
        for name, m in subjects.items():
            sample = self._task_sample(rule, name, m, baselines.get(name))
            if sample is not None:
                out.append(sample)
        return out

    def _task_sample(self, rule: Rule, name: str, m: Merged, base: Any) -> Sample | None:
        c = m.counts
        finished = sum(c.get(o, 0) for o in FINAL_OUTCOMES)
        done = c.get("done", 0)
        metric = rule.metric
        if metric in ("task_failure_rate", "task_retry_rate", "task_count", "task_failures"):
            if finished < max(rule.min_count, 1 if metric.endswith("rate") else 0):
                return None
            value = {"task_failure_rate": 100.0 * c.get("failure", 0) / max(finished, 1),
                     "task_retry_rate": 100.0 * c.get("retried", 0) / max(finished, 1),
                     "task_count": float(finished),
                     "task_failures": float(c.get("failure", 0))}[metric]
            return Sample(name, round(value, 3), {"count": finished,
                                                   "failures": c.get("failure", 0)})
        if done < max(rule.min_count, 1):
            return None
        avg = m.dsum / done
        p95 = quantiles(m.hist, (0.95,), m.dmin, m.dmax)[0.95] or 0.0
        if metric == "task_avg_duration":
            return Sample(name, round(avg, 6), {"count": done})
        if metric == "task_p95_duration":
            return Sample(name, round(p95, 6), {"count": done})
        if base is None or not base.known:
            return None
        current, normal = (avg, base.avg) if metric == "task_duration_ratio" else (p95, base.p95)
        if not normal:
            return None
        return Sample(name, round(current / normal, 3),
                      {"current": round(current, 6), "baseline": round(normal, 6),
                       "method": base.method, "count": done})

    def _increase(self, series: str, value: int, now: float, window: int,
                  cache: dict[Any, Any]) -> float:
        """Increase of a cumulative counter over ``window``, from samples kept in Redis (so an
        evaluator taking over knows what its predecessor saw)."""
        key = self.keys.alert_series(series)
        samples = self._once(cache, ("series", series), lambda: self._record(key, value, now))
        start = now - window
        before = [v for ts, v in samples if ts <= start]
        base = before[-1] if before else samples[0][1]
        return float(value - base) if value >= base else float(value)

    def _record(self, key: str, value: int, now: float) -> list[tuple[float, int]]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(key, {f"{now!r}:{value}": now})
        pipe.zremrangebyscore(key, "-inf", now - SERIES_KEEP)
        pipe.expire(key, int(SERIES_KEEP))
        pipe.zrange(key, 0, -1, withscores=True)
        raw = pipe.execute()[-1]
        return [(float(score), int(member.rsplit(":", 1)[1])) for member, score in raw]


__all__ = ["FLEET", "SERIES_KEEP", "Sample", "Sources", "combine"]
