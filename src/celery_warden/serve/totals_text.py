"""celery-exporter's task families (``celery_task_*``), written straight to the text format.

Why not ``CounterMetricFamily``/``HistogramMetricFamily`` + ``generate_latest`` for these: with
200 task names x 3 queues x 5 hosts the two histograms alone are ~110,000 samples, and
prometheus_client builds a ``Sample`` (a named tuple with a label dict) for each and then sorts
and escapes every label of every sample again — measured 1.5 s per scrape on this project's
machine against a 200 ms target. Here each label set is escaped once, each line is one
f-string, and the store is read with two ``HSCAN`` walks of the cumulative totals hashes
(written by ``lua/flush.lua``, see :mod:`celery_warden.read.totals` for their layout). The
output is the same Prometheus text format 0.0.4 (``tests/unit/test_exporter.py`` parses it with
prometheus_client's parser); the smaller families still go through the collector.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from itertools import accumulate
from typing import cast

import redis

from celery_warden.keys import Keys
from celery_warden.record.totals import BOUNDS, EVENTS, SEP

#: celery-exporter's counters: event -> help text (its own wording).
TASK_EVENTS: dict[str, str] = {
    "sent": "Sent when a task message is published.",
    "received": "Sent when the worker receives a task.",
    "started": "Sent just before the worker executes the task.",
    "succeeded": "Sent if the task executed successfully.",
    "failed": "Sent if the execution of the task failed.",
    "rejected": "The task was rejected by the worker, possibly to be re-queued or moved to a "
                "dead letter queue.",
    "revoked": "Sent if the task has been revoked.",
    "retried": "Sent if the task failed, but will be retried in the future.",
}
#: celery-exporter's histograms: Warden's metric -> (name, help).
HISTOGRAMS: dict[str, tuple[str, str]] = {
    "runtime": ("celery_task_runtime", "Histogram of task runtime measurements."),
    "queue_wait": ("celery_task_queue_wait_time",
                   "Histogram of the time tasks spend waiting in the queue before being "
                   "executed, excluding deliberate ETA/countdown delay."),
}
#: Fields per ``HSCAN`` call: a few round trips, none holding Redis for long.
SCAN_COUNT = 5000
assert set(TASK_EVENTS) == set(EVENTS)


def le(bound: float) -> str:
    """A bucket bound as prometheus_client writes it (``0.025``, ``1.0``, ``+Inf``)."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def escape(value: str) -> str:
    """A label value in the text format (backslash, double quote and newline escaped)."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


#: Label strings already escaped, by (name, host, queue): a pure function of the label values
#: (no metric value is kept between scrapes); cleared when it grows past the bound.
_LABELS: dict[tuple[str, str, str], str] = {}
LABEL_CACHE_MAX = 50_000


def _labels(name: str, host: str, queue: str) -> str:
    key = (name, host, queue)
    text = _LABELS.get(key)
    if text is None:
        if len(_LABELS) >= LABEL_CACHE_MAX:
            _LABELS.clear()
        text = _LABELS[key] = (f'hostname="{escape(host)}",name="{escape(name)}",'
                               f'queue_name="{escape(queue)}"')
    return text


def _pages(client: redis.Redis, keys: Keys) -> Iterator[tuple[str, dict[str, str]]]:
    """``("counters" | "hists", page)`` for every ``HSCAN`` page of the two totals hashes.

    Grouped page by page, so no second copy of the ~60,000 fields is built. (Requesting the
    next page in a helper thread while this one is grouped was tried: no gain measured on this
    project's loaded 2-core machine, where the scrape is CPU-bound.)"""
    for kind, key in (("counters", keys.totals_counters), ("hists", keys.totals_hists)):
        cursor = 0
        while True:
            cursor, page = client.hscan(key, cursor, count=SCAN_COUNT)
            yield kind, cast(dict[str, str], page)
            if not cursor:
                break


class _Families:
    """The task families of one scrape, grouped page by page (nothing kept afterwards)."""

    def __init__(self) -> None:
        self.counters: dict[str, list[str]] = {event: [] for event in TASK_EVENTS}
        #: metric -> {"name SEP host SEP queue": per-bucket counts (as stored), then the sum}
        self.hists: dict[str, dict[str, list[str]]] = {metric: {} for metric in HISTOGRAMS}
        #: field prefix -> (its counts, slot suffix -> index): one lookup per field
        self._groups: dict[str, tuple[list[str], dict[str, int]]] = {}

    def add_counters(self, raw: dict[str, str]) -> None:
        by_event = self.counters
        for field, value in raw.items():
            parts = field.split(SEP)
            if len(parts) != 5 or parts[0] not in by_event:
                continue  # not a field this version writes
            event, name, host, queue, exc = parts
            labels = _labels(name, host, queue)
            if event == "failed":
                labels = f'exception="{escape(exc)}",{labels}'
            by_event[event].append(f"celery_task_{event}_total{{{labels}}} {value}\n")

    def add_hists(self, raw: dict[str, str]) -> None:
        """Fields ``metric SEP name SEP host SEP queue SEP slot`` (slot: a bucket index, or
        ``s`` for the sum); the counts stay strings until rendering cumulates them."""
        groups = self._groups
        for field, value in raw.items():
            prefix, _, slot = field.rpartition(SEP)
            found = groups.get(prefix)
            if found is None:
                found = groups[prefix] = self._group(prefix)
            group, slots = found
            index = slots.get(slot)
            if index is not None:
                group[index] = value  # else not a slot this version writes

    def _group(self, prefix: str) -> tuple[list[str], dict[str, int]]:
        """The counts of one label set (``prefix``: the field without its slot), registered
        under its metric; a metric this version does not write gets a list nothing reads."""
        metric, _, labels = prefix.partition(SEP)
        group = ["0"] * (_SIZES.get(metric, 0) + 1)
        sets = self.hists.get(metric)
        if sets is None:
            return group, {}
        sets[labels] = group
        return group, _SLOTS[metric]

    def counter_lines(self) -> list[str]:
        """``celery_task_<event>_total`` families, one ``HELP``/``TYPE`` header each."""
        out: list[str] = []
        for event, doc in TASK_EVENTS.items():
            out.append(f"# HELP celery_task_{event}_total {doc}\n"
                       f"# TYPE celery_task_{event}_total counter\n")
            lines = self.counters[event]
            lines.sort()
            out.extend(lines)
        return out

    def histogram_lines(self) -> list[str]:
        """``celery_task_runtime`` and ``celery_task_queue_wait_time``: cumulative ``_bucket``
        lines (the store keeps per-bucket counts), ``_count`` (= the ``+Inf`` bucket), ``_sum``."""
        out: list[str] = []
        for metric, (fam, doc) in HISTOGRAMS.items():
            out.append(f"# HELP {fam} {doc}\n# TYPE {fam} histogram\n")
            size, template = _SIZES[metric], _TEMPLATES[metric]
            sets = self.hists[metric]
            for key in sorted(sets):
                parts = key.split(SEP)
                if len(parts) != 3:
                    continue
                group = sets[key]
                cumulative = list(accumulate(map(int, group[:size])))
                text = template % (*cumulative, cumulative[-1], float(group[size]))
                out.append(text.replace(_AT, _labels(*parts)))
        return out


#: Per histogram: bucket slots (bounds and +Inf), and each slot's field suffix -> list index
#: (the sum last).
_SIZES = {metric: len(BOUNDS[metric]) + 1 for metric in HISTOGRAMS}
_SLOTS = {metric: {**{str(i): i for i in range(n)}, "s": n} for metric, n in _SIZES.items()}
#: Where a label set's labels go in :data:`_TEMPLATES` (inserted by one ``str.replace`` after
#: the numbers: a label value is never scanned for ``%`` and the placeholder is in no value).
_AT = "\x00"


def _template(fam: str, metric: str) -> str:
    """One label set's lines: ``%d`` per cumulative bucket count, then the count, ``%r`` the
    sum (prometheus_client's float repr); :data:`_AT` where the labels go."""
    lines = [f'{fam}_bucket{{{_AT},le="{le(b)}"}} %d\n' for b in (*BOUNDS[metric], math.inf)]
    return "".join(lines) + f"{fam}_count{{{_AT}}} %d\n{fam}_sum{{{_AT}}} %r\n"


_TEMPLATES = {metric: _template(fam, metric) for metric, (fam, _) in HISTOGRAMS.items()}


def task_text(client: redis.Redis, keys: Keys) -> str:
    """The eight counters and two histograms of every task label set, as text."""
    families = _Families()
    for kind, page in _pages(client, keys):
        if kind == "counters":
            families.add_counters(page)
        else:
            families.add_hists(page)
    return "".join(families.counter_lines() + families.histogram_lines())


__all__ = ["HISTOGRAMS", "TASK_EVENTS", "escape", "le", "task_text"]
