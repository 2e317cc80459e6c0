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
from typing import cast

import redis

from celery_warden.keys import Keys
from celery_warden.read.totals_pack import pack_histograms
from celery_warden.record.totals import BOUNDS, EVENTS, SEP, SLOTS

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


#: Label text already escaped, by the stored field's labels part (``name␟host␟queue``, or
#: ``name␟host␟queue␟exception`` for a counter, the exception label written for ``failed``
#: only): a pure function of the label values (no metric value is kept between scrapes), looked
#: up by the string as stored, so a sample costs one dict lookup; cleared past the bound.
_LABELS: dict[str, str] = {}
LABEL_CACHE_MAX = 50_000


def _labels(stored: str, failed: bool = False) -> str | None:
    """The label text of stored labels (None when they are not a label set this version
    writes); ``failed``: a counter's labels with the ``exception`` label first."""
    key = f"!{stored}" if failed else stored
    text = _LABELS.get(key)
    if text is None:
        parts = stored.split(SEP)
        if len(parts) == 4:
            name, host, queue, exc = parts
        elif len(parts) == 3 and not failed:
            (name, host, queue), exc = parts, ""
        else:
            return None
        if len(_LABELS) >= LABEL_CACHE_MAX:
            _LABELS.clear()
        text = (f'hostname="{escape(host)}",name="{escape(name)}",'
                f'queue_name="{escape(queue)}"')
        if failed:
            text = f'exception="{escape(exc)}",{text}'
        _LABELS[key] = text
    return text


#: A hash read with one ``HGETALL`` up to this many fields (~15 ms of Redis on a loaded
#: machine at 50,000); past it, ``HSCAN`` pages, so Redis is never held long.
WHOLE_MAX = 50_000


def _read(client: redis.Redis, keys: Keys) -> tuple[dict[str, str], dict[str, str]]:
    """The counters hash and the packed histograms hash, whole.

    One round trip for the sizes (and whether the first histogram layout still holds fields:
    then they are moved first, :mod:`celery_warden.read.totals_pack`), one for both hashes."""
    pipe = client.pipeline(transaction=False)
    pipe.hlen(keys.totals_counters)
    pipe.hlen(keys.totals_packed)
    pipe.hlen(keys.totals_hists)
    n_counters, n_packed, n_old = pipe.execute()
    if n_old:
        pack_histograms(client, keys)
        n_packed = client.hlen(keys.totals_packed)
    out: list[dict[str, str]] = []
    pipe = client.pipeline(transaction=False)
    for key, n in ((keys.totals_counters, n_counters), (keys.totals_packed, n_packed)):
        if n <= WHOLE_MAX:
            pipe.hgetall(key)
    got = iter(pipe.execute())
    for key, n in ((keys.totals_counters, n_counters), (keys.totals_packed, n_packed)):
        if n <= WHOLE_MAX:
            out.append(cast(dict[str, str], next(got)))
        else:
            out.append(cast(dict[str, str], dict(client.hscan_iter(key, count=SCAN_COUNT))))
    return out[0], out[1]


def counter_lines(raw: dict[str, str]) -> list[str]:
    """``celery_task_<event>_total`` families, one ``HELP``/``TYPE`` header each, lines sorted
    by their labels."""
    by_event: dict[str, list[str]] = {event: [] for event in TASK_EVENTS}
    for field, value in raw.items():
        event, _, stored = field.partition(SEP)
        lines = by_event.get(event)
        labels = _labels(stored, event == "failed") if stored.count(SEP) == 3 else None
        if lines is None or labels is None:
            continue  # not a field this version writes
        lines.append(f"celery_task_{event}_total{{{labels}}} {value}\n")
    out: list[str] = []
    for event, doc in TASK_EVENTS.items():
        out.append(f"# HELP celery_task_{event}_total {doc}\n"
                   f"# TYPE celery_task_{event}_total counter\n")
        lines = by_event[event]
        lines.sort()
        out.extend(lines)
    return out


def histogram_lines(packed: dict[str, str]) -> list[str]:
    """``celery_task_runtime`` and ``celery_task_queue_wait_time`` from the packed fields
    (``metric␟name␟host␟queue`` -> cumulative bucket counts then the sum): the stored counts are
    already the ``_bucket`` values, written as stored; ``_count`` is the ``+Inf`` bucket; the
    sum is written as prometheus_client writes a float. A malformed field is skipped."""
    by_metric: dict[str, list[tuple[str, str]]] = {metric: [] for metric in HISTOGRAMS}
    for field, value in packed.items():
        metric, _, labels = field.partition(SEP)
        sets = by_metric.get(metric)
        if sets is not None:
            sets.append((labels, value))
    out: list[str] = []
    for metric, (fam, doc) in HISTOGRAMS.items():
        out.append(f"# HELP {fam} {doc}\n# TYPE {fam} histogram\n")
        size, template = _SIZES[metric], _TEMPLATES[metric]
        sets = by_metric[metric]
        sets.sort()
        for key, value in sets:
            text = _labels(key) if key.count(SEP) == 2 else None
            numbers = value.split(" ")
            if text is None or len(numbers) != size + 1 or not _counts(numbers[:size]):
                continue
            try:
                total = float(numbers[size])
            except ValueError:
                continue
            out.append((template % (*numbers[:size], numbers[size - 1], total))
                       .replace(_AT, text))
    return out


def _counts(numbers: list[str]) -> bool:
    """Whether every stored bucket count is a plain non-negative integer (written as is)."""
    return all(map(str.isdigit, numbers))


#: Per histogram: bucket slots (bounds and +Inf).
_SIZES = SLOTS
#: Where a label set's labels go in :data:`_TEMPLATES` (inserted by one ``str.replace`` after
#: the numbers: a label value is never scanned for ``%`` and the placeholder is in no value).
_AT = "\x00"


def _template(fam: str, metric: str) -> str:
    """One label set's lines: ``%s`` per cumulative bucket count and the count (as stored),
    ``%r`` the sum (prometheus_client's float repr); :data:`_AT` where the labels go."""
    lines = [f'{fam}_bucket{{{_AT},le="{le(b)}"}} %s\n' for b in (*BOUNDS[metric], math.inf)]
    return "".join(lines) + f"{fam}_count{{{_AT}}} %s\n{fam}_sum{{{_AT}}} %r\n"


_TEMPLATES = {metric: _template(fam, metric) for metric, (fam, _) in HISTOGRAMS.items()}


def task_text(client: redis.Redis, keys: Keys) -> str:
    """The eight counters and two histograms of every task label set, as text."""
    counters, packed = _read(client, keys)
    return "".join(counter_lines(counters) + histogram_lines(packed))


__all__ = ["HISTOGRAMS", "TASK_EVENTS", "escape", "le", "task_text"]
