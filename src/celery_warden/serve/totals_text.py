"""celery-exporter's task families (``celery_task_*``), written straight to the text format.

Why not ``CounterMetricFamily``/``HistogramMetricFamily`` + ``generate_latest`` for these: with
200 task names x 3 queues x 5 hosts the two histograms alone are ~110,000 samples, and
prometheus_client builds a ``Sample`` (a named tuple with a label dict) for each and then sorts
and escapes every label of every sample again — measured 1.5 s per scrape on this project's
machine against a 200 ms target. Here each label set is escaped once, each counter line is one
f-string, each histogram label set's lines one ``%`` of a template with the counts as stored
(the flush script keeps them cumulative, one field per label set: ``Keys.totals_packed``), and
the store is read with one ``HGETALL`` of each totals hash (written by ``lua/flush.lua``; see
:mod:`celery_warden.read.totals` for their layout, :mod:`celery_warden.read.totals_pack` for
the first histogram layout, moved at scrape time), all as bytes. The output is the same
Prometheus text format 0.0.4 (``tests/unit/test_totals_text.py`` parses it with
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
#: Fields per ``HSCAN`` call for a hash past :data:`WHOLE_MAX` fields.
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
#: up by the bytes as stored, so a sample costs one dict lookup; cleared past the bound.
_LABELS: dict[bytes, bytes] = {}
LABEL_CACHE_MAX = 50_000
_SEP = SEP.encode()


def _labels(stored: bytes, failed: bool = False) -> bytes | None:
    """The label text of stored labels (None when they are not a label set this version
    writes); ``failed``: a counter's labels with the ``exception`` label first."""
    key = b"!" + stored if failed else stored
    text = _LABELS.get(key)
    if text is None:
        parts = stored.decode("utf-8", "replace").split(SEP)
        if len(parts) == 4:
            name, host, queue, exc = parts
        elif len(parts) == 3 and not failed:
            (name, host, queue), exc = parts, ""
        else:
            return None
        if len(_LABELS) >= LABEL_CACHE_MAX:
            _LABELS.clear()
        label = (f'hostname="{escape(host)}",name="{escape(name)}",'
                 f'queue_name="{escape(queue)}"')
        if failed:
            label = f'exception="{escape(exc)}",{label}'
        text = _LABELS[key] = label.encode()
    return text


#: A hash read with one ``HGETALL`` up to this many fields (~15 ms of Redis on a loaded
#: machine at 50,000); past it, ``HSCAN`` pages, so Redis is never held long.
WHOLE_MAX = 50_000


def _read(client: redis.Redis, keys: Keys) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    """The counters hash and the packed histograms hash, whole, as bytes (``client`` must not
    decode replies: the text is assembled as bytes, so the ~14 MB body is built once).

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
    out: list[dict[bytes, bytes]] = []
    pipe = client.pipeline(transaction=False)
    for key, n in ((keys.totals_counters, n_counters), (keys.totals_packed, n_packed)):
        if n <= WHOLE_MAX:
            pipe.hgetall(key)
    got = iter(pipe.execute())
    for key, n in ((keys.totals_counters, n_counters), (keys.totals_packed, n_packed)):
        raw = next(got) if n <= WHOLE_MAX else dict(client.hscan_iter(key, count=SCAN_COUNT))
        if raw and not isinstance(next(iter(raw)), bytes):
            raise TypeError("the totals are read with a client that does not decode replies")
        out.append(cast(dict[bytes, bytes], raw))
    return out[0], out[1]


def counter_lines(raw: dict[bytes, bytes]) -> list[bytes]:
    """``celery_task_<event>_total`` families, one ``HELP``/``TYPE`` header each, lines sorted
    by their labels."""
    by_event: dict[bytes, list[bytes]] = {event.encode(): [] for event in TASK_EVENTS}
    failed = b"failed"
    for field, value in raw.items():
        kind, _, stored = field.partition(_SEP)
        lines = by_event.get(kind)
        labels = _labels(stored, kind == failed) if stored.count(_SEP) == 3 else None
        if lines is None or labels is None:
            continue  # not a field this version writes
        lines.append(b"celery_task_%s_total{%s} %s\n" % (kind, labels, value))
    out: list[bytes] = []
    for event, doc in TASK_EVENTS.items():
        out.append(f"# HELP celery_task_{event}_total {doc}\n"
                   f"# TYPE celery_task_{event}_total counter\n".encode())
        lines = by_event[event.encode()]
        lines.sort()
        out.extend(lines)
    return out


def histogram_lines(packed: dict[bytes, bytes]) -> list[bytes]:
    """``celery_task_runtime`` and ``celery_task_queue_wait_time`` from the packed fields
    (``metric␟name␟host␟queue`` -> cumulative bucket counts then the sum): the stored counts are
    already the ``_bucket`` values, written as stored; ``_count`` is the ``+Inf`` bucket; the
    sum is written as prometheus_client writes a float. A malformed field is skipped."""
    by_metric: dict[bytes, list[tuple[bytes, bytes]]] = {m.encode(): [] for m in HISTOGRAMS}
    for field, value in packed.items():
        kind, _, labels = field.partition(_SEP)
        sets = by_metric.get(kind)
        if sets is not None:
            sets.append((labels, value))
    out: list[bytes] = []
    for metric, (fam, doc) in HISTOGRAMS.items():
        out.append(f"# HELP {fam} {doc}\n# TYPE {fam} histogram\n".encode())
        size, template = _SIZES[metric], _TEMPLATES[metric]
        sets = by_metric[metric.encode()]
        sets.sort()
        for key, value in sets:
            text = _labels(key) if key.count(_SEP) == 2 else None
            numbers = value.split(b" ")
            if text is None or len(numbers) != size + 1 or not _counts(numbers[:size]):
                continue
            try:
                total = float(numbers[size])
            except ValueError:
                continue
            out.append((template % (*numbers[:size], numbers[size - 1], total))
                       .replace(_AT, text))
    return out


def _counts(numbers: list[bytes]) -> bool:
    """Whether every stored bucket count is a plain non-negative integer (written as is)."""
    return all(map(bytes.isdigit, numbers))


#: Per histogram: bucket slots (bounds and +Inf).
_SIZES = SLOTS
#: Where a label set's labels go in :data:`_TEMPLATES` (inserted by one ``replace`` after the
#: numbers: a label value is never scanned for ``%`` and the placeholder is in no value).
_AT = b"\x00"


def _template(fam: str, metric: str) -> bytes:
    """One label set's lines: ``%s`` per cumulative bucket count and the count (as stored),
    ``%r`` the sum (prometheus_client's float repr); :data:`_AT` where the labels go."""
    at = _AT.decode()
    lines = [f'{fam}_bucket{{{at},le="{le(b)}"}} %s\n' for b in (*BOUNDS[metric], math.inf)]
    return ("".join(lines) + f"{fam}_count{{{at}}} %s\n{fam}_sum{{{at}}} %r\n").encode()


_TEMPLATES = {metric: _template(fam, metric) for metric, (fam, _) in HISTOGRAMS.items()}


def task_parts(client: redis.Redis, keys: Keys) -> list[bytes]:
    """The eight counters and two histograms of every task label set, as pieces of UTF-8 text
    for the caller to join once with the rest of the body (``client``: one that does not decode
    replies). Why bytes: a joined str, its encoding and the body's concatenation were three
    fresh ~14 MB buffers per scrape, ~20 ms of page faults and copies (measured, loaded)."""
    counters, packed = _read(client, keys)
    return counter_lines(counters) + histogram_lines(packed)


def task_text(client: redis.Redis, keys: Keys) -> str:
    """:func:`task_parts` as one string (tests, tools)."""
    return b"".join(task_parts(client, keys)).decode()


__all__ = ["HISTOGRAMS", "TASK_EVENTS", "escape", "le", "task_parts", "task_text"]
