"""Cumulative totals for Prometheus: event counters and runtime / queue-wait histograms.

Written by every recorder's flush (:mod:`celery_warden.record.totals`, ``lua/flush.lua``)
without TTL, so they never decrease — across serve restarts, replicas and bucket expiry — and
count every event once (the flush's chunk idempotency). Read with ``HSCAN`` so a large keyspace
never blocks Redis for long. Histograms are read from both layouts and added: the packed one
(a field per label set) and the first one (a field per bucket), which older recorders may still
write and :mod:`celery_warden.read.totals_pack` empties — this reader changes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import redis

from celery_warden.keys import Keys
from celery_warden.record.totals import BOUNDS, SEP, SLOTS


@dataclass(frozen=True, slots=True)
class CounterTotal:
    event: str  # sent | received | started | succeeded | failed | rejected | revoked | retried
    name: str
    hostname: str  # host part of celery@host (the publisher's host for `sent`); never "None"
    queue: str
    exception: str  # exception class name for `failed`, "" otherwise
    value: int


@dataclass(frozen=True, slots=True)
class HistogramTotal:
    metric: str  # "runtime" | "queue_wait"
    name: str
    hostname: str
    queue: str
    buckets: tuple[tuple[float, int], ...]  # (upper bound, cumulative count), last bound is inf
    count: int
    sum: float


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def read_totals(client: redis.Redis, keys: Keys) -> tuple[list[CounterTotal], list[HistogramTotal]]:
    """Every counter and histogram, sorted by their labels."""
    counters: list[CounterTotal] = []
    for field, value in client.hscan_iter(keys.totals_counters, count=1000):
        parts = _text(field).split(SEP)
        if len(parts) != 5:
            continue  # not a field this version writes
        event, name, hostname, queue, exc = parts
        counters.append(CounterTotal(event, name, hostname, queue, exc, int(value)))
    raw: dict[tuple[str, ...], list[float]] = {}
    for field, value in client.hscan_iter(keys.totals_hists, count=1000):
        parts = _text(field).split(SEP)
        if len(parts) != 5 or parts[0] not in BOUNDS:
            continue
        slots = _slots(raw, tuple(parts[:4]))
        slot = parts[4]
        if slot == "s":
            slots[-1] += float(value)
        elif slot.isdigit() and int(slot) < len(slots) - 1:
            slots[int(slot)] += int(value)
    for field, value in client.hscan_iter(keys.totals_packed, count=1000):
        parts = _text(field).split(SEP)
        numbers = _text(value).split()
        if len(parts) != 4 or parts[0] not in BOUNDS or len(numbers) != SLOTS[parts[0]] + 1:
            continue
        slots = _slots(raw, tuple(parts))
        previous = 0
        for i, cumulative in enumerate(map(int, numbers[:-1])):
            slots[i] += cumulative - previous  # back to per-bucket counts, as the old layout
            previous = cumulative
        slots[-1] += float(numbers[-1])
    hists = [_histogram(labels, slots) for labels, slots in raw.items()]
    counters.sort(key=lambda c: (c.event, c.name, c.hostname, c.queue, c.exception))
    hists.sort(key=lambda h: (h.metric, h.name, h.hostname, h.queue))
    return counters, hists


def _slots(raw: dict[tuple[str, ...], list[float]], labels: tuple[str, ...]) -> list[float]:
    """A label set's per-bucket counts then its sum (both layouts add into the same list)."""
    slots = raw.get(labels)
    if slots is None:
        slots = raw[labels] = [0] * SLOTS[labels[0]] + [0.0]
    return slots


def _histogram(labels: tuple[str, ...], slots: list[float]) -> HistogramTotal:
    metric, name, hostname, queue = labels
    bounds = (*BOUNDS[metric], math.inf)
    running = 0
    buckets = []
    for bound, n in zip(bounds, slots, strict=False):
        running += int(n)
        buckets.append((bound, running))
    return HistogramTotal(metric, name, hostname, queue, tuple(buckets), running,
                          float(slots[-1]))


__all__ = ["CounterTotal", "HistogramTotal", "read_totals"]
