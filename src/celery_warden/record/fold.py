"""A batch's metric buckets as the flush script writes them: per name, fleet-wide, summaries.

Why fold at flush time: a fleet-wide read (performance of every task, the KPIs, the task-types
list) used to merge every name's buckets — 500 names x 61 minutes is 30,500 hashes for one hour.
The flusher already holds every name's increments of the batch, so it adds them up once more:

* **fleet buckets** (``P:fm:<minute>``, ``P:fh:<hour>``): every name's bucket folded into one,
  the same fields (outcomes, ``done``, ``dsum``, the duration and queue-wait histograms,
  ``dmin``/``dmax``), so a fleet-wide summary reads one series instead of one per name;
* **summaries** (``P:sm:<minute>``, ``P:sh:<hour>``): one hash per minute and hour with a few
  counters of every name (``<field>:<name>`` for each outcome, ``retried``, ``done``, ``dsum``;
  no histogram slots), so per-name totals over an hour are ~60 ``HGETALL`` of small hashes.

Both are plain increments written by the same numbered chunk as the per-name buckets
(``lua/flush.lua``'s bucket section), so the chunk's high-water mark applies them exactly once,
and a fleet bucket always equals the sum of the name buckets of its minute or hour. They expire
like the buckets they fold: minutes after ``WARDEN_METRICS_RETENTION``, hours after
``WARDEN_ROLLUP_RETENTION``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery_warden.keys import Keys, hour_of
from celery_warden.record.batch import Batch, BucketDelta, is_slot
from celery_warden.settings import WardenSettings

#: Counters of a bucket left out of the summaries (queue-wait count: the summaries serve the
#: rates and average durations; wait is read from the fleet or name buckets).
NOT_SUMMARISED = ("wn",)


def summary_field(field_name: str, task_name: str) -> str:
    """A summary hash field: the bucket field, then the task name (names may hold ``:``;
    bucket fields never do, so the first ``:`` splits)."""
    return f"{field_name}:{task_name}"


def fleet(buckets: dict[tuple[str, int], BucketDelta],
          period: Callable[[float], int] | None = None) -> dict[int, BucketDelta]:
    """Every name's buckets folded per period start (``period`` maps a start, e.g.
    :func:`celery_warden.keys.hour_of`; the same start by default)."""
    out: dict[int, BucketDelta] = {}
    for (_, start), b in buckets.items():
        at = start if period is None else period(start)
        f = out.get(at)
        if f is None:
            f = out[at] = BucketDelta()
        f.merge(b)
    return out


def summary(buckets: dict[tuple[str, int], BucketDelta],
            period: Callable[[float], int] | None = None
            ) -> dict[int, tuple[dict[str, int], dict[str, float]]]:
    """Per period start: (counters, float sums) as summary fields of every name."""
    out: dict[int, tuple[dict[str, int], dict[str, float]]] = {}
    for (name, start), b in buckets.items():
        at = start if period is None else period(start)
        counts, floats = out.setdefault(at, ({}, {}))
        for k, v in b.counts.items():
            if v and k not in NOT_SUMMARISED and not is_slot(k):
                f = summary_field(k, name)
                counts[f] = counts.get(f, 0) + v
        dsum = b.floats.get("dsum")
        if dsum is not None:
            f = summary_field("dsum", name)
            floats[f] = floats.get(f, 0.0) + dsum
    return out


def bucket_entries(batch: Batch, keys: Keys, settings: WardenSettings) -> list[list[Any]]:
    """Every bucket the flush script writes for this batch, in its wire format:
    ``[key, ttl, {counter: n}, {float field: repr}, dmin | '', dmax | '']``.
    ``batch.hours`` must have been derived (:meth:`Batch.rollup_hours`)."""
    minute_ttl, hour_ttl = settings.metrics_retention, settings.rollup_retention
    out = [_bucket(keys.minute_bucket(n, m), minute_ttl, b) for (n, m), b in batch.minutes.items()]
    out += [_bucket(keys.hour_bucket(n, h), hour_ttl, b) for (n, h), b in batch.hours.items()]
    out += [_bucket(keys.fleet_minute(m), minute_ttl, b) for m, b in fleet(batch.minutes).items()]
    out += [_bucket(keys.fleet_hour(h), hour_ttl, b)
            for h, b in fleet(batch.minutes, hour_of).items()]
    for m, (counts, floats) in summary(batch.minutes).items():
        out.append(_plain(keys.summary_minute(m), minute_ttl, counts, floats))
    for h, (counts, floats) in summary(batch.minutes, hour_of).items():
        out.append(_plain(keys.summary_hour(h), hour_ttl, counts, floats))
    return out


def _plain(key: str, ttl: int, counts: dict[str, int], floats: dict[str, float]) -> list[Any]:
    return [key, ttl, counts or {}, {f: repr(v) for f, v in floats.items()} or {}, "", ""]


def _bucket(key: str, ttl: int, b: BucketDelta) -> list[Any]:
    return [
        key,
        ttl,
        b.counts or {},
        {f: repr(v) for f, v in b.floats.items()} or {},
        "" if b.dmin is None else repr(b.dmin),
        "" if b.dmax is None else repr(b.dmax),
    ]


__all__ = ["NOT_SUMMARISED", "bucket_entries", "fleet", "summary", "summary_field"]
