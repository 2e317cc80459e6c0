"""Per-task-name counters over a window, from the cross-name summary hashes.

The flusher writes one summary hash per minute, per 10 minutes and per hour (``P:sm:<minute>``,
``P:s10:<start>``, ``P:sh:<hour>``; :mod:`celery_warden.record.fold`) with one field per task
name active in it, its counters as a small JSON object (every outcome, ``retried``, ``done``,
``dsum``). So the KPIs and the task-types list read 7-16 hashes for one hour (10-minute
blocks, minutes at both ends; hours too for 24 h and 7 d:
:func:`celery_warden.record.windows.summary_cover`) instead of one bucket per name and minute.
The sums are exact: the same increments as the name buckets, written by the same chunk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import cast

import redis

from celery_warden.keys import Keys
from celery_warden.record.windows import summary_keys


@dataclass(slots=True)
class Summaries:
    """Every name's counters summed over a window."""

    #: name -> bucket field -> sum over the window.
    per_name: dict[str, dict[str, float]] = field(default_factory=dict)


def read_summaries(client: redis.Redis, keys: Keys, start: float, end: float) -> Summaries:
    """Every name's counters over [start, end] in one pipelined round trip."""
    pipe = client.pipeline(transaction=False)
    for key in summary_keys(keys, start, end):
        pipe.hgetall(key)
    raws = cast(list[dict[str, str]], pipe.execute())
    # One JSON parse of every value at once: ~3x faster than a parse per value (30,000 of
    # them for 500 names over an hour).
    names = [name for raw in raws for name in raw]
    rows = json.loads("[" + ",".join(v for raw in raws for v in raw.values()) + "]")
    per: dict[str, dict[str, float]] = {}
    for name, parsed in zip(names, rows, strict=True):
        row = per.get(name)
        if row is None:
            per[name] = parsed
            continue
        for f, v in parsed.items():
            row[f] = row.get(f, 0) + v
    return Summaries(per_name=per)


__all__ = ["Summaries", "read_summaries"]
