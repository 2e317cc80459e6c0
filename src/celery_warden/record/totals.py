"""Cumulative totals for Prometheus: per-label counters and histograms that never decrease.

Why separate from the minute buckets: those expire with the metrics retention, so a counter
derived from them would fall when a bucket expires — Prometheus reads that as a reset. Totals
are kept without TTL under ``P:totals:*`` and added with ``HINCRBY`` in the same script call
(``lua/flush.lua``) and the same numbered chunk as the buckets, so a repeated chunk adds them
once (see :mod:`celery_warden.record.chunks`).

On the hot path a handler adds 1 to a dict entry keyed by the raw label tuple (and, for a
histogram, to one slot of a list) inside the lock it already takes; :func:`fold` turns the
batch's entries into the script's arguments on the flusher thread: host part of ``celery@host``,
labels cut and cleaned, bucket slots kept non-cumulative (the script adds them into the label
set's one packed field of cumulative counts, ``Keys.totals_packed``, which a scrape writes out as
stored).

Bounded, in the store (the script) and in memory (:data:`MAX_IN_MEMORY` label sets per batch):
at most :data:`MAX_NAMES` task names, :data:`MAX_SETS_PER_NAME` label sets and
:data:`MAX_EXCEPTIONS_PER_NAME` exception names per task name. Past a cap the increment goes to
a label set whose capped labels read ``_other`` (the total per event stays exact) and the
overflow is counted (``P:totals:meta`` field ``overflow``).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

#: prometheus_client's default histogram buckets (without +Inf, which is the last slot).
RUNTIME_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                  10.0)
#: Queue wait spans minutes (ETA, backlogs), so its buckets go further.
QUEUE_WAIT_BOUNDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
                     1800.0)
BOUNDS = {"runtime": RUNTIME_BOUNDS, "queue_wait": QUEUE_WAIT_BOUNDS}
#: Bucket slots per histogram (its bounds and ``+Inf``): the counts in one packed field.
SLOTS = {metric: len(bounds) + 1 for metric, bounds in BOUNDS.items()}

#: Events counted (the contract's list).
EVENTS = ("sent", "received", "started", "succeeded", "failed", "rejected", "revoked", "retried")
#: A finished attempt's outcome (``state.lower()``) → the event counted.
OUTCOME_EVENTS = {"success": "succeeded", "failure": "failed", "retry": "retried",
                  "revoked": "revoked", "rejected": "rejected"}

MAX_NAMES = 1000
MAX_SETS_PER_NAME = 2000
MAX_EXCEPTIONS_PER_NAME = 50
#: Label sets one process holds between flushes (or while Redis is down); past it new sets go to
#: the ``_other`` set of their task name, so counts stay exact.
MAX_IN_MEMORY = 5000
OTHER = "_other"
#: Name of a message no task of this app is registered for (any producer can send any name).
UNKNOWN = "_unknown"
#: Longest label value kept.
MAX_LABEL = 200
#: Separates labels in the stored field names (removed from label values).
SEP = "\x1f"

CounterKey = tuple[str, str, str, str, str]  # event, name, hostname (raw), queue, exception
HistKey = tuple[str, str, str, str]  # metric, name, hostname (raw), queue


def count(table: dict[CounterKey, int], key: CounterKey) -> None:
    """Add one event (caller holds the buffer's lock)."""
    count_many(table, key, 1)


def count_many(table: dict[CounterKey, int], key: CounterKey, n: int) -> None:
    """Add ``n`` events of one label set; past :data:`MAX_IN_MEMORY` label sets, a new one is
    counted under ``_other``."""
    have = table.get(key)
    if have is None:
        if len(table) >= MAX_IN_MEMORY:
            key = (key[0], key[1], OTHER, OTHER, OTHER if key[4] else "")
            have = table.get(key, 0)
        else:
            have = 0
    table[key] = have + n


def _slots(table: dict[HistKey, list[float]], key: HistKey) -> list[float]:
    """The histogram of ``key`` (created empty; past :data:`MAX_IN_MEMORY`, ``_other``'s)."""
    slots = table.get(key)
    if slots is None:
        if len(table) >= MAX_IN_MEMORY:
            key = (key[0], key[1], OTHER, OTHER)
            slots = table.get(key)
        if slots is None:
            slots = table[key] = [0.0] * (len(BOUNDS[key[0]]) + 2)
    return slots


def observe_many(table: dict[HistKey, list[float]], key: HistKey, values: list[float]) -> None:
    """Add several observations of one label set (:func:`observe` for each, one look-up)."""
    slots = _slots(table, key)
    bounds = BOUNDS[key[0]]
    total = slots[0]
    for value in values:
        total += value
        slots[bisect_left(bounds, value) + 1] += 1
    slots[0] = total


def observe(table: dict[HistKey, list[float]], key: HistKey, value: float) -> None:
    """Add one observation: slot 0 is the sum, slot 1 + i the count of bucket i."""
    slots = _slots(table, key)
    slots[0] += value
    slots[bisect_left(BOUNDS[key[0]], value) + 1] += 1


def merge(into: dict[Any, Any], other: dict[Any, Any]) -> None:
    """Merge a later batch's totals (counters or histograms) into ``into``."""
    for k, v in other.items():
        cur = into.get(k)
        if cur is None:
            into[k] = v
        elif isinstance(v, list):
            for i, x in enumerate(v):
                cur[i] += x
        else:
            into[k] = cur + v


def label(value: Any) -> str:
    """A label value as stored: text, without the separator, cut, never ``None``."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if SEP in text or "\n" in text:
        text = text.replace(SEP, " ").replace("\n", " ")
    return text[:MAX_LABEL]


def host(value: Any) -> str:
    """The host part of ``celery@host`` (the whole value without an ``@``)."""
    return label(label(value).rpartition("@")[2])


def fold(counters: dict[CounterKey, int],
         hists: dict[HistKey, list[float]]) -> dict[str, list[list[Any]]]:
    """The batch's totals as the flush script's arguments (flusher thread)."""
    c: dict[tuple[str, ...], int] = {}
    for (event, name, hostname, queue, exc), n in counters.items():
        k = (event, label(name), host(hostname), label(queue), label(exc))
        c[k] = c.get(k, 0) + n
    h: dict[tuple[str, ...], list[float]] = {}
    for (metric, name, hostname, queue), slots in hists.items():
        hk = (metric, label(name), host(hostname), label(queue))
        cur = h.get(hk)
        if cur is None:
            h[hk] = list(slots)
        else:
            for i, x in enumerate(slots):
                cur[i] += x
    return {
        "counters": [[*k, n] for k, n in c.items() if n],
        "hists": [[*k, repr(s[0]), {str(i): int(x) for i, x in enumerate(s[1:]) if x}]
                  for k, s in h.items()],
    }


__all__ = ["BOUNDS", "EVENTS", "MAX_EXCEPTIONS_PER_NAME", "MAX_IN_MEMORY", "MAX_NAMES",
           "MAX_SETS_PER_NAME", "OTHER", "OUTCOME_EVENTS", "QUEUE_WAIT_BOUNDS",
           "RUNTIME_BOUNDS", "SEP", "SLOTS", "UNKNOWN", "CounterKey", "HistKey", "count",
           "count_many", "fold", "host", "label", "merge", "observe", "observe_many"]
