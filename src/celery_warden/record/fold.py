"""A batch's metric buckets as the flush script writes them: per name, fleet-wide, summaries.

Why fold at flush time: a fleet-wide read (performance of every task, the KPIs, the task-types
list) used to merge every name's buckets — 500 names x 61 minutes is 30,500 hashes for one hour.
The flusher already holds every name's increments of the batch, so it adds them up once more:

* **fleet buckets** (``P:fm:<minute>``, ``P:fh:<hour>``): every name's bucket folded into one,
  the same fields (outcomes, ``done``, ``dsum``, the duration and queue-wait histograms,
  ``dmin``/``dmax``), so a fleet-wide summary reads one series instead of one per name;
* **10-minute blocks** (``P:m10:<name>:<start>``, ``P:fm10:<start>``): each name's minute
  buckets and the fleet's summed per 10 minutes, the same fields, so a one-hour performance
  summary merges 7-16 hashes instead of 61 (:func:`celery_warden.record.windows.cover`). The
  first chunk that writes one sets ``P:blocks:since`` (:func:`blocks_marker`): the start of the
  block after the one being written (the current block may hold minutes an older version wrote
  without a block), or 0 on a store nothing wrote to before; readers take minutes before it;
* **summaries** (``P:sm:<minute>``, ``P:s10:<10 minutes>``, ``P:sh:<hour>``): one hash per minute,
  per 10 minutes and per hour with one field per task name active in it, its counters packed into
  the value as a small JSON object (``{"success":12,"done":12,"dsum":0.84}``: every outcome,
  ``retried``, ``done``, ``dsum``; no histogram slots), so per-name totals over an hour are 7-16
  ``HGETALL`` (10-minute blocks, the minutes at both ends). Why packed: one field per counter made
  the hash 4.5 times larger in Redis (a big hash pays ~70 B per field) and slower to read; the
  script adds a packed value in place, atomically, like ``HINCRBY``.

All are additions written by the same numbered chunk as the per-name buckets
(``lua/flush.lua``'s bucket section), so the chunk's high-water mark applies them exactly once,
and a fleet bucket or a block always equals the sum of the buckets it folds. They expire like
those: minutes and blocks after ``WARDEN_METRICS_RETENTION``, hours after
``WARDEN_ROLLUP_RETENTION``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery_warden.keys import BLOCK, Keys, block_of, hour_of
from celery_warden.record.batch import Batch, BucketDelta, fold_buckets, is_slot
from celery_warden.settings import WardenSettings

#: Counters of a bucket left out of the summaries (queue-wait count: the summaries serve the
#: rates and average durations; wait is read from the fleet or name buckets).
NOT_SUMMARISED = ("wn",)


def fleet(buckets: dict[tuple[str, int], BucketDelta],
          period: Callable[[float], int] | None = None) -> dict[int, BucketDelta]:
    """Every name's buckets folded per period start (``period`` maps a start, e.g.
    :func:`celery_warden.keys.hour_of`; the same start by default)."""
    if period is None:
        return fold_buckets(buckets, lambda k: k[1])
    return fold_buckets(buckets, lambda k: period(k[1]))


def summary(buckets: dict[tuple[str, int], BucketDelta],
            period: Callable[[float], int] | None = None) -> dict[int, dict[str, dict[str, Any]]]:
    """Per period start: every name's summarised counters (and ``dsum``), non-zero only."""
    out: dict[int, dict[str, dict[str, Any]]] = {}
    for (name, start), b in buckets.items():
        at = start if period is None else period(start)
        row = out.setdefault(at, {}).setdefault(name, {})
        for k, v in b.counts.items():
            if v and k not in NOT_SUMMARISED and not is_slot(k):
                row[k] = row.get(k, 0) + v
        dsum = b.floats.get("dsum")
        if dsum is not None:
            row["dsum"] = row.get("dsum", 0.0) + dsum
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
    out += [_bucket(keys.name_block(n, t), minute_ttl, b)
            for (n, t), b in fold_buckets(batch.minutes,
                                          lambda k: (k[0], block_of(k[1]))).items()]
    out += [_bucket(keys.fleet_block(t), minute_ttl, b)
            for t, b in fleet(batch.minutes, block_of).items()]
    return out


def blocks_marker(keys: Keys) -> list[Any]:
    """What the flush script needs to set :attr:`~celery_warden.keys.Keys.blocks_since` once:
    the marker's key, the names index (absent: a fresh store, no older version wrote minutes
    without blocks, so blocks count from 0) and the block width."""
    return [keys.blocks_since, keys.names, BLOCK]


def summary_entries(batch: Batch, keys: Keys, settings: WardenSettings) -> list[list[Any]]:
    """The summaries of this batch in the flush script's format:
    ``[key, ttl, {task name: {field: increment}}]`` (the script adds them into the name's one
    field, a JSON object)."""
    out = [[keys.summary_minute(m), settings.metrics_retention, rows]
           for m, rows in summary(batch.minutes).items()]
    out += [[keys.summary_block(b), settings.metrics_retention, rows]
            for b, rows in summary(batch.minutes, block_of).items()]
    out += [[keys.summary_hour(h), settings.rollup_retention, rows]
            for h, rows in summary(batch.minutes, hour_of).items()]
    return out


def _bucket(key: str, ttl: int, b: BucketDelta) -> list[Any]:
    return [
        key,
        ttl,
        b.counts or {},
        {f: repr(v) for f, v in b.floats.items()} or {},
        "" if b.dmin is None else repr(b.dmin),
        "" if b.dmax is None else repr(b.dmax),
    ]


__all__ = ["NOT_SUMMARISED", "blocks_marker", "bucket_entries", "fleet", "summary",
           "summary_entries"]
