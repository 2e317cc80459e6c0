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
from itertools import accumulate
from typing import Any, cast

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


def read_raw(client: redis.Redis, keys: Keys) -> tuple[dict[str, str], dict[str, str]]:
    """The two totals hashes as they are stored (field -> value)."""
    return _scan(client, keys.totals_counters), _scan(client, keys.totals_hists)


def _scan(client: redis.Redis, key: str) -> dict[str, str]:
    out: dict[str, str] = {}
    cursor = 0
    while True:
        cursor, page = client.hscan(key, cursor, count=SCAN_COUNT)
        out.update(cast(dict[str, str], page))
        if not cursor:
            return out


def counter_lines(raw: dict[str, str]) -> list[str]:
    """``celery_task_<event>_total`` families, one ``HELP``/``TYPE`` header each."""
    by_event: dict[str, list[str]] = {event: [] for event in TASK_EVENTS}
    for field, value in raw.items():
        parts = field.split(SEP)
        if len(parts) != 5 or parts[0] not in by_event:
            continue  # not a field this version writes
        event, name, host, queue, exc = parts
        labels = _labels(name, host, queue)
        if event == "failed":
            labels = f'exception="{escape(exc)}",{labels}'
        by_event[event].append(f"celery_task_{event}_total{{{labels}}} {value}\n")
    out: list[str] = []
    for event, doc in TASK_EVENTS.items():
        out.append(f"# HELP celery_task_{event}_total {doc}\n"
                   f"# TYPE celery_task_{event}_total counter\n")
        lines = by_event[event]
        lines.sort()
        out.extend(lines)
    return out


def _template(fam: str, metric: str) -> str:
    """One label set's lines as a ``str.format`` template: ``{0}`` the labels, ``{1}``..
    the cumulative bucket counts, then the count and the sum."""
    bounds = [le(b) for b in (*BOUNDS[metric], math.inf)]
    lines = [f'{fam}_bucket{{{{{{0}},le="{bound}"}}}} {{{i + 1}}}\n'
             for i, bound in enumerate(bounds)]
    n = len(bounds)
    lines.append(f"{fam}_count{{{{{{0}}}}}} {{{n + 1}}}\n")
    lines.append(f"{fam}_sum{{{{{{0}}}}}} {{{n + 2}}}\n")
    return "".join(lines)


def histogram_lines(raw: dict[str, str]) -> list[str]:
    """``celery_task_runtime`` and ``celery_task_queue_wait_time``: cumulative ``_bucket``
    lines (the store keeps per-bucket counts), ``_count`` (= the ``+Inf`` bucket) and ``_sum``.
    One ``str.format`` per label set: ~6,000 sets render in tens of milliseconds."""
    # One pass over the fields: per label set (the field name without its slot), a list of
    # per-bucket counts with the sum as its last item.
    sizes = {metric: len(BOUNDS[metric]) + 1 for metric in HISTOGRAMS}
    sets: dict[str, list[Any]] = {}
    for field, value in raw.items():
        prefix, _, slot = field.rpartition(SEP)
        group = sets.get(prefix)
        if group is None:
            size = sizes.get(prefix.partition(SEP)[0])
            if size is None:
                continue  # not a metric this version writes
            group = sets[prefix] = [0] * size + ["0"]
        if slot == "s":
            group[-1] = value
        elif slot.isdigit() and int(slot) < len(group) - 1:
            group[int(slot)] = int(value)
    by_metric: dict[str, list[tuple[str, list[Any]]]] = {m: [] for m in HISTOGRAMS}
    for prefix, group in sets.items():
        parts = prefix.split(SEP)
        if len(parts) == 4:
            by_metric[parts[0]].append((prefix, group))
    out: list[str] = []
    for metric, (fam, doc) in HISTOGRAMS.items():
        out.append(f"# HELP {fam} {doc}\n# TYPE {fam} histogram\n")
        template = _template(fam, metric)
        for prefix, group in sorted(by_metric[metric]):
            _, name, host, queue = prefix.split(SEP)
            cumulative = list(accumulate(group[:-1]))
            out.append(template.format(_labels(name, host, queue), *cumulative,
                                       cumulative[-1], repr(float(group[-1]))))
    return out


def task_text(client: redis.Redis, keys: Keys) -> str:
    """The eight counters and two histograms of every task label set, as text."""
    counters, hists = read_raw(client, keys)
    return "".join(counter_lines(counters) + histogram_lines(hists))


__all__ = ["HISTOGRAMS", "TASK_EVENTS", "counter_lines", "escape", "histogram_lines", "le",
           "read_raw", "task_text"]
