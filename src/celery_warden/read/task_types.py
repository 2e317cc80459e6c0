"""The task-types list: one row per task name, sorted and paginated server-side.

Why two reads: the counters of every name (count, failures, retries, average duration, rate)
come from the cross-name summary hashes (:mod:`celery_warden.read.summaries`, 7-16 hashes for
1 h whatever the number of names), which is enough to sort and cut a page; percentiles need a
name's histogram, so only the rows of the page shown read their own buckets, merged in Redis
(``lua/merge_buckets.lua``, one call per row in one pipeline). The
sparkline (finished per minute, or per hour beyond 6 h) comes back from the same merge.
Sorting by a percentile is therefore not offered: it would read every name's histogram.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis

from celery_warden import scripts
from celery_warden.keys import Keys, hour_of
from celery_warden.read.metrics import FINAL_OUTCOMES, Merged, MetricsReader, Window, window_label
from celery_warden.record.histogram import quantiles
from celery_warden.record.windows import MINUTES_ONLY_UP_TO, bucket_keys, cover
from celery_warden.units import percent

#: Sort keys the list offers (every one answered from the summaries).
SORTS = ("count", "name", "failed", "failure_rate", "retried", "rate", "avg")
#: Rows per page by default, and at most.
PAGE, MAX_PAGE = 50, 200

_SORT_FIELD: dict[str, Callable[[dict[str, Any]], Any]] = {
    "count": lambda r: r["count"], "name": lambda r: r["name"], "failed": lambda r: r["failed"],
    "failure_rate": lambda r: r["failure_rate_pct"], "retried": lambda r: r["retried"],
    "rate": lambda r: r["rate_per_min"], "avg": lambda r: r["avg_ms"],
}


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000.0, 3)


def counters_row(name: str, label: str, seconds: int, c: dict[str, float]) -> dict[str, Any]:
    """A row's counters (no percentiles yet) from summed bucket fields."""
    finished = int(sum(c.get(o, 0) for o in FINAL_OUTCOMES))
    done = c.get("done", 0)
    failed = int(c.get("failure", 0))
    return {
        "name": name, "window": label, "count": finished,
        "succeeded": int(c.get("success", 0)), "failed": failed,
        "failure_rate_pct": percent(failed, finished),
        "retried": int(c.get("retried", 0)), "retries": int(c.get("retry", 0)),
        "p50_ms": None, "p95_ms": None, "p99_ms": None,
        "avg_ms": _ms(c.get("dsum", 0.0) / done) if done else None,
        "rate_per_min": round(finished * 60.0 / seconds, 4),
    }


def with_percentiles(row: dict[str, Any], m: Merged) -> dict[str, Any]:
    q = quantiles(m.hist, (0.5, 0.95, 0.99), m.dmin, m.dmax)
    row.update(p50_ms=_ms(q[0.5]), p95_ms=_ms(q[0.95]), p99_ms=_ms(q[0.99]))
    return row


def sort_rows(rows: list[dict[str, Any]], sort: str, descending: bool) -> list[dict[str, Any]]:
    """Sorted by ``sort``, ties by name; a row without a value (no rate, no average) last."""
    key = _SORT_FIELD[sort]
    by_name = sorted(rows, key=lambda r: r["name"])
    valued = [r for r in by_name if key(r) is not None]
    return sorted(valued, key=key, reverse=descending) + [r for r in by_name if key(r) is None]


class TaskTypesReader:
    """Task-type rows: a sorted page of every name, or one name."""

    def __init__(self, metrics: MetricsReader, client: redis.Redis, keys: Keys) -> None:
        self.metrics = metrics
        self.redis = client
        self.keys = keys

    def known(self, name: str) -> bool:
        return self.redis.zscore(self.keys.names, name) is not None

    def row(self, name: str, window: Window) -> dict[str, Any]:
        """One name's row from its own buckets."""
        seconds = self.metrics.window_seconds(window)
        end = time.time()
        m = self.metrics.merged([name], end - seconds, end)
        c: dict[str, float] = {**m.counts, "dsum": m.dsum}
        return with_percentiles(counters_row(name, window_label(window, seconds), seconds, c), m)

    def page(self, window: Window, sort: str = "count", descending: bool = True,
             limit: int = PAGE, offset: int = 0) -> dict[str, Any]:
        """Rows ``offset`` to ``offset + limit`` of every name seen within the retention,
        sorted; ``next_cursor`` is the next offset (``None`` on the last page)."""
        if sort not in _SORT_FIELD:
            raise ValueError(f"unknown sort {sort!r}: one of {', '.join(SORTS)}")
        seconds = self.metrics.window_seconds(window)
        label = window_label(window, seconds)
        end = time.time()
        s = self.metrics.summaries(window)
        names = dict.fromkeys([*self.metrics.task_names(), *s.per_name])
        rows = [counters_row(n, label, seconds, s.per_name.get(n, {})) for n in names]
        rows = sort_rows(rows, sort, descending)
        limit = max(1, min(limit, MAX_PAGE))
        shown = rows[offset : offset + limit]
        # Each shown row's own buckets, merged in Redis (lua/merge_buckets.lua): one reply of
        # ~40 fields per row instead of every bucket's fields.
        # The sparkline is finished per bucket from the same call: per minute up to 6 h (so
        # minutes only, no 10-minute blocks), per hour beyond (the blocks and minutes at the
        # window's ends folded into their hour).
        merge = scripts.script(self.redis, "merge_buckets")
        since = self.metrics.blocks_from() if seconds > MINUTES_ONLY_UP_TO else None
        pipe = self.redis.pipeline(transaction=False)
        for r in shown:
            merge(keys=bucket_keys(self.keys, r["name"], end - seconds, end, since),
                  args=list(FINAL_OUTCOMES), client=pipe)
        slots = [t if seconds <= MINUTES_ONLY_UP_TO else hour_of(t)
                 for _, t in cover(end - seconds, end, since)]
        for r, (flat, per_key) in zip(shown, pipe.execute(), strict=True):
            m = Merged()
            m.add(dict(zip(flat[::2], flat[1::2], strict=True)))
            with_percentiles(r, m)
            spark: dict[int, int] = {}
            for t, n in zip(slots, per_key, strict=True):
                spark[t] = spark.get(t, 0) + int(n)
            r["spark"] = [spark[t] for t in sorted(spark)]
        more = offset + limit < len(rows)
        return {"window": label, "sort": sort, "order": "desc" if descending else "asc",
                "total": len(rows), "items": shown,
                "next_cursor": str(offset + limit) if more else None}


__all__ = ["MAX_PAGE", "PAGE", "SORTS", "TaskTypesReader", "counters_row", "sort_rows"]
