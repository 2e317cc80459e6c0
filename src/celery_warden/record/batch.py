"""What one flush writes: buffered changes to task records, metric buckets, error groups,
heartbeats and counters, merged in memory by the recorder and applied by the store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from celery_warden.keys import hour_of, minute_of
from celery_warden.record import totals
from celery_warden.record.histogram import MAX_INDEX, bucket_index
from celery_warden.record.order import retries_of

K = TypeVar("K")
J = TypeVar("J")


class Preview:
    """Task args or kwargs, turned into a redacted, size-bounded JSON preview at flush time."""

    __slots__ = ("empty", "value")

    def __init__(self, value: Any, empty: str = "[]") -> None:
        self.value = value
        self.empty = empty


@dataclass(slots=True)
class TaskDelta:
    """Buffered change to one task record.

    ``static`` fields (name, queue, sent) are always written; ``attempt`` fields (state, times,
    error, retries) only when ``(seq, rank)`` is not older than what the store holds. ``seq``
    orders deliveries of one task id (see :func:`celery_warden.record.order.delivery_seq`).
    """

    static: dict[str, Any] = field(default_factory=dict)
    attempt: dict[str, Any] = field(default_factory=dict)
    seq: int = 0
    rank: int = 0
    updated: float = 0.0
    #: A task that ran in this process: its start fields are expanded at flush time (see
    #: ``celery_warden.record.recorder.Running``), under the explicit ``static``/``attempt`` values.
    run: Any = None

    @property
    def retries(self) -> int:
        """Retries of the delivery this delta belongs to (derived from ``seq``)."""
        return retries_of(self.seq)


#: Histogram slot field names by bucket index (built once: two per finished task otherwise).
_H_SLOTS = tuple(f"h{i}" for i in range(MAX_INDEX + 1))
_W_SLOTS = tuple(f"w{i}" for i in range(MAX_INDEX + 1))


def is_slot(field_name: str) -> bool:
    """A histogram slot (``h<i>`` duration, ``w<i>`` queue wait), not a counter."""
    return field_name[:1] in ("h", "w") and field_name[1:].isdigit()


@dataclass(slots=True)
class BucketDelta:
    """Buffered increments to one metric bucket (per task name and minute or hour, or the
    fleet-wide fold of every name's: see :mod:`celery_warden.record.fold`).

    Queue wait has its own histogram (``w<i>``, the duration histogram's log-scale slots), so
    wait percentiles merge across minutes, names and processes exactly like duration ones."""

    counts: dict[str, int] = field(default_factory=dict)
    floats: dict[str, float] = field(default_factory=dict)
    dmin: float | None = None
    dmax: float | None = None

    def outcomes(self) -> int:
        """Outcomes counted (success, failure, ...; not the timing and histogram fields)."""
        return sum(v for k, v in self.counts.items()
                   if k not in ("done", "wn") and not is_slot(k))

    def add(self, outcome: str, duration: float | None, wait: float | None,
            retried: bool) -> None:
        """Count one outcome (hot path: the caller holds the buffer's lock)."""
        c = self.counts
        c[outcome] = c.get(outcome, 0) + 1
        if retried:
            c["retried"] = c.get("retried", 0) + 1
        if duration is not None:
            c["done"] = c.get("done", 0) + 1
            h = _H_SLOTS[bucket_index(duration)]
            c[h] = c.get(h, 0) + 1
            self.floats["dsum"] = self.floats.get("dsum", 0.0) + duration
            if self.dmin is None or duration < self.dmin:
                self.dmin = duration
            if self.dmax is None or duration > self.dmax:
                self.dmax = duration
        if wait is not None:
            wait = max(wait, 0.0)
            c["wn"] = c.get("wn", 0) + 1
            w = _W_SLOTS[bucket_index(wait)]
            c[w] = c.get(w, 0) + 1
            self.floats["wsum"] = self.floats.get("wsum", 0.0) + wait

    def merge(self, other: BucketDelta) -> None:
        for k, v in other.counts.items():
            self.counts[k] = self.counts.get(k, 0) + v
        for k, f in other.floats.items():
            self.floats[k] = self.floats.get(k, 0.0) + f
        if other.dmin is not None:
            self.dmin = other.dmin if self.dmin is None else min(self.dmin, other.dmin)
        if other.dmax is not None:
            self.dmax = other.dmax if self.dmax is None else max(self.dmax, other.dmax)


@dataclass(slots=True)
class ErrorDelta:
    """Buffered occurrences of one error group (see :mod:`celery_warden.dlq.groups`)."""

    info: dict[str, str]
    count: int = 0
    first: float = 0.0
    last: float = 0.0
    names: dict[str, int] = field(default_factory=dict)
    task_ids: list[str] = field(default_factory=list)
    minutes: dict[int, int] = field(default_factory=dict)

    def merge(self, other: ErrorDelta) -> None:
        self.count += other.count
        self.first = min(self.first, other.first) if self.first else other.first
        self.last = max(self.last, other.last)
        for n, c in other.names.items():
            self.names[n] = self.names.get(n, 0) + c
        self.task_ids = (self.task_ids + other.task_ids)[-RECENT_IDS:]
        for m, c in other.minutes.items():
            self.minutes[m] = self.minutes.get(m, 0) + c


#: Recent task ids buffered per error group between flushes.
RECENT_IDS = 20


@dataclass(slots=True)
class Batch:
    """Everything one flush writes."""

    tasks: dict[str, TaskDelta] = field(default_factory=dict)
    minutes: dict[tuple[str, int], BucketDelta] = field(default_factory=dict)
    hours: dict[tuple[str, int], BucketDelta] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)
    queues: set[str] = field(default_factory=set)
    workers: dict[str, dict[str, str]] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    errors: dict[str, ErrorDelta] = field(default_factory=dict)
    #: Cumulative totals (see :mod:`celery_warden.record.totals`): events by raw label tuple,
    #: histograms as [sum, bucket counts...].
    counters: dict[totals.CounterKey, int] = field(default_factory=dict)
    hists: dict[totals.HistKey, list[float]] = field(default_factory=dict)
    #: Published tasks as raw tuples (see ``RecordBuffer.sent``), records built when sealed.
    sent: list[tuple[Any, ...]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.tasks or self.minutes or self.workers or self.stats or self.names or self.queues
            or self.errors or self.counters or self.hists or self.sent
        )

    def absorb(self, newer: Batch) -> None:
        """Merge a later batch into this one (a record never moves backwards)."""
        for tid, d in newer.tasks.items():
            old = self.tasks.get(tid)
            if old is None:
                self.tasks[tid] = d
                continue
            old.static.update(d.static)
            if d.rank and (d.seq, d.rank) >= (old.seq, old.rank):
                if d.seq > old.seq:
                    old.attempt.clear()
                old.attempt.update(d.attempt)
                old.seq, old.rank = d.seq, d.rank
            old.run = d.run or old.run
            old.updated = max(old.updated, d.updated)
        for key, b in newer.minutes.items():
            if key in self.minutes:
                self.minutes[key].merge(b)
            else:
                self.minutes[key] = b
        self.names |= newer.names
        self.queues |= newer.queues
        self.workers.update(newer.workers)
        for fp, e in newer.errors.items():
            if fp in self.errors:
                self.errors[fp].merge(e)
            else:
                self.errors[fp] = e
        for k, v in newer.stats.items():
            self.stats[k] = self.stats.get(k, 0) + v
        totals.merge(self.counters, newer.counters)
        totals.merge(self.hists, newer.hists)
        self.sent += newer.sent

    def add_error(self, info: dict[str, str], task_name: str, task_id: str, ts: float,
                  limit: int) -> bool:
        """Count one failure in its error group; True when the oldest group was dropped to
        stay within ``limit`` groups (caller holds the buffer's lock)."""
        fp = info["fingerprint"]
        dropped = False
        e = self.errors.get(fp)
        if e is None:
            if len(self.errors) >= limit:
                del self.errors[next(iter(self.errors))]
                dropped = True
            e = self.errors[fp] = ErrorDelta(
                info={k: v for k, v in info.items() if k != "fingerprint"}, first=ts)
        e.count += 1
        e.last = ts
        e.names[task_name] = e.names.get(task_name, 0) + 1
        e.task_ids.append(task_id)
        if len(e.task_ids) > RECENT_IDS:
            del e.task_ids[0]
        minute = minute_of(ts)
        e.minutes[minute] = e.minutes.get(minute, 0) + 1
        return dropped

    def rollup_hours(self) -> None:
        """Derive the hour roll-ups from the minute buckets (written in the same call)."""
        self.hours.clear()
        self.hours.update(fold_buckets(self.minutes, lambda k: (k[0], hour_of(k[1]))))


def fold_buckets(buckets: dict[K, BucketDelta], key: Callable[[K], J]) -> dict[J, BucketDelta]:
    """``buckets`` merged by ``key`` (e.g. a name's minutes into its hours, every name's into
    the fleet's): the one fold behind the hour roll-ups, the fleet buckets and the blocks."""
    out: dict[J, BucketDelta] = {}
    for k, b in buckets.items():
        at = key(k)
        f = out.get(at)
        if f is None:
            f = out[at] = BucketDelta()
        f.merge(b)
    return out


__all__ = ["RECENT_IDS", "Batch", "BucketDelta", "ErrorDelta", "Preview", "TaskDelta",
           "fold_buckets", "is_slot"]
