"""Metric buckets, read: performance over a window for one task name or all of them.

A summary reads at most ~200 small hashes in one pipeline (see
:mod:`celery_warden.record.windows`): one name's buckets, or for every name the fleet-wide
buckets the flusher folds (:mod:`celery_warden.record.fold`) — one series whatever the number of
names. Percentiles of duration and of queue wait come from the merged log-scale histograms
(:mod:`celery_warden.record.histogram`, relative error <= 4.4 %).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

import redis
import redis.asyncio as aredis

from celery_warden import scripts
from celery_warden.keys import Keys
from celery_warden.read.summaries import Summaries, read_summaries
from celery_warden.record.batch import is_slot
from celery_warden.record.histogram import RELATIVE_ERROR, quantiles
from celery_warden.record.windows import bucket_keys, fleet_keys, parse_window
from celery_warden.settings import WardenSettings
from celery_warden.units import percent

#: Outcomes that end a task's delivery (the denominator of throughput and retry rate).
FINAL_OUTCOMES = ("success", "failure", "revoked", "rejected", "ignored")

Window = str | int | timedelta

#: Seconds a reader keeps ``P:blocks:since`` before reading it again. Once set it never moves,
#: but an operator may set it later (a rolling upgrade, docs/storage.md); absent, minutes are
#: read, which is exact, so a stale "absent" costs speed, never correctness.
BLOCKS_SINCE_TTL = 60.0


@dataclass(slots=True)
class Merged:
    """Bucket fields summed over a window."""

    counts: dict[str, int] = field(default_factory=dict)
    hist: dict[int, int] = field(default_factory=dict)
    #: Queue-wait histogram (``w<i>`` slots, the same log scale).
    whist: dict[int, int] = field(default_factory=dict)
    dsum: float = 0.0
    wsum: float = 0.0
    dmin: float | None = None
    dmax: float | None = None

    def add(self, bucket: dict[str, str]) -> None:
        for name, value in bucket.items():
            if name == "dsum":
                self.dsum += float(value)
            elif name == "wsum":
                self.wsum += float(value)
            elif name == "dmin":
                self.dmin = float(value) if self.dmin is None else min(self.dmin, float(value))
            elif name == "dmax":
                self.dmax = float(value) if self.dmax is None else max(self.dmax, float(value))
            elif is_slot(name):
                hist = self.hist if name[0] == "h" else self.whist
                idx = int(name[1:])
                hist[idx] = hist.get(idx, 0) + int(value)
            else:
                self.counts[name] = self.counts.get(name, 0) + int(value)


def window_label(window: Window, seconds: int) -> str:
    return window if isinstance(window, str) else f"{seconds}s"


class MetricsReader:
    """Reads the per-minute and hourly metric buckets."""

    def __init__(self, settings: WardenSettings, client: redis.Redis) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.redis = client
        self._blocks: tuple[float, float | None] = (-BLOCKS_SINCE_TTL, None)

    def blocks_from(self) -> float | None:
        """Start of the first 10-minute block every writer has written (``P:blocks:since``;
        ``None``: no block is complete, read minutes). Cached for :data:`BLOCKS_SINCE_TTL`."""
        if self._blocks_stale():
            return self._keep_blocks(self.redis.get(self.keys.blocks_since))
        return self._blocks[1]

    def _blocks_stale(self) -> bool:
        return time.monotonic() - self._blocks[0] >= BLOCKS_SINCE_TTL

    def _keep_blocks(self, raw: Any) -> float | None:
        """Cache the marker as read (absent: ``None``) and return it."""
        since = None if raw is None else float(raw)
        self._blocks = (time.monotonic(), since)
        return since

    def window_seconds(self, window: Window) -> int:
        """A window's length, refused beyond what the hourly roll-ups keep."""
        return parse_window(window, self.settings.rollup_retention, "WARDEN_ROLLUP_RETENTION")

    def task_names(self) -> list[str]:
        """Task names seen within the metric retention, most recent first."""
        cutoff = time.time() - self.settings.metrics_retention
        return cast(list[str], self.redis.zrevrangebyscore(self.keys.names, "+inf", cutoff))

    def series_keys(self, names: list[str] | None, start: float, end: float,
                    since: float | None) -> list[list[str]]:
        """Per series (one per name; one for ``None``: the fleet-wide buckets), the bucket keys
        covering [start, end], 10-minute blocks from ``since`` on."""
        if names is None:
            return [fleet_keys(self.keys, start, end, since)]
        return [bucket_keys(self.keys, name, start, end, since) for name in names]

    def merged(self, names: list[str] | None, start: float, end: float) -> Merged:
        """Buckets of ``names`` merged over [start, end]; ``None``: the fleet-wide buckets.
        Each series is merged in Redis (``lua/merge_buckets.lua``): one reply of ~40 fields
        instead of every bucket's; 10-minute blocks stand in for their minutes from
        :meth:`blocks_from` on (one hour: 7-16 hashes, not 61)."""
        merge = scripts.script(self.redis, "merge_buckets")
        pipe = self.redis.pipeline(transaction=False)
        for keys in self.series_keys(names, start, end, self.blocks_from()):
            merge(keys=keys, client=pipe)
        return merged_replies(pipe.execute())

    async def amerged(self, client: aredis.Redis, names: list[str] | None, start: float,
                      end: float) -> Merged:
        """:meth:`merged` read through the asyncio ``client`` (the API server awaits it on its
        loop: no thread pool hop, no blocking call on the loop)."""
        merge = scripts.async_script(client, "merge_buckets")
        series = self.series_keys(names, start, end, await self.ablocks_from(client))
        if len(series) == 1:  # one name or the fleet: one EVALSHA, no pipeline (whose execute
            return merged_replies([await merge(keys=series[0])])  # checks SCRIPT EXISTS first)
        pipe = client.pipeline(transaction=False)
        for keys in series:
            await merge(keys=keys, client=pipe)
        return merged_replies(await pipe.execute())

    async def ablocks_from(self, client: aredis.Redis) -> float | None:
        """:meth:`blocks_from` read through the asyncio ``client`` (same cache)."""
        if self._blocks_stale():
            return self._keep_blocks(await client.get(self.keys.blocks_since))
        return self._blocks[1]

    def performance(self, task_name: str | None = None, window: Window = "1h") -> dict[str, Any]:
        """Counts, rates, average and percentile durations and throughput over a window.

        ``task_name=None`` aggregates every task name (the fleet-wide buckets). Rates are
        percentages of every task finished in the window (``count``: succeeded, failed, revoked,
        rejected, ignored), as the spec defines its KPIs: ``success_rate = success / count x
        100``, ``failure_rate`` likewise, ``retry_rate = retried / count x 100`` where
        ``retried`` counts tasks that finished after at least one retry (``retry`` counts the
        retry events themselves).
        Queue wait: its mean and its p50/p95/p99 from the queue-wait histogram.
        """
        seconds = self.window_seconds(window)
        end = time.time()
        m = self.merged([task_name] if task_name else None, end - seconds, end)
        return performance_summary(m, task_name, window, seconds)

    async def aperformance(self, client: aredis.Redis, task_name: str | None = None,
                           window: Window = "1h") -> dict[str, Any]:
        """:meth:`performance` read through the asyncio ``client``."""
        seconds = self.window_seconds(window)
        end = time.time()
        m = await self.amerged(client, [task_name] if task_name else None, end - seconds, end)
        return performance_summary(m, task_name, window, seconds)

    def summaries(self, window: Window) -> Summaries:
        """Every name's counters over a window, from the cross-name summary hashes."""
        seconds = self.window_seconds(window)
        end = time.time()
        return read_summaries(self.redis, self.keys, end - seconds, end)

    def counts(self, fields: tuple[str, ...], window: Window) -> dict[str, dict[str, int]]:
        """Selected counters per task name over a window (names where any is non-zero)."""
        out: dict[str, dict[str, int]] = {}
        for name, sums in self.summaries(window).per_name.items():
            row = {f: int(sums.get(f, 0)) for f in fields}
            if any(row.values()):
                out[name] = row
        return out


def merged_replies(replies: list[Any]) -> Merged:
    """The ``lua/merge_buckets.lua`` replies of a pipeline, added into one :class:`Merged`."""
    merged = Merged()
    for flat, _ in replies:
        merged.add(dict(zip(flat[::2], flat[1::2], strict=True)))
    return merged


def performance_summary(m: Merged, task_name: str | None, window: Window,
                        seconds: int) -> dict[str, Any]:
    """The answer of :meth:`MetricsReader.performance` from the merged buckets."""
    c = m.counts
    finished = sum(c.get(o, 0) for o in FINAL_OUTCOMES)
    success, failure, retry = c.get("success", 0), c.get("failure", 0), c.get("retry", 0)
    retried = c.get("retried", 0)
    done = c.get("done", 0)
    q = quantiles(m.hist, (0.5, 0.95, 0.99), m.dmin, m.dmax)
    w = quantiles(m.whist, (0.5, 0.95, 0.99))
    return {
        "task_name": task_name,
        "window": window_label(window, seconds),
        "window_seconds": seconds,
        "count": finished,
        "success": success,
        "failure": failure,
        "retry": retry,
        "retried": retried,
        "revoked": c.get("revoked", 0),
        "rejected": c.get("rejected", 0),
        "success_rate": percent(success, finished),
        "failure_rate": percent(failure, finished),
        "retry_rate": percent(retried, finished),
        "executions": done,
        "avg_duration": m.dsum / done if done else None,
        "p50": q[0.5],
        "p95": q[0.95],
        "p99": q[0.99],
        "min_duration": m.dmin,
        "max_duration": m.dmax,
        "avg_queue_wait": m.wsum / c["wn"] if c.get("wn") else None,
        "queue_wait_p50": w[0.5],
        "queue_wait_p95": w[0.95],
        "queue_wait_p99": w[0.99],
        "throughput_per_second": finished / seconds,
        "throughput_per_minute": finished * 60.0 / seconds,
        "histogram_relative_error": round(RELATIVE_ERROR, 4),
    }


__all__ = ["BLOCKS_SINCE_TTL", "FINAL_OUTCOMES", "Merged", "MetricsReader", "Window",
           "merged_replies", "performance_summary", "window_label"]
