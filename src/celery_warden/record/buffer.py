"""The hot path: task events buffered in memory, no I/O where the work happens.

A signal handler calls :meth:`RecordBuffer.task` / :meth:`RecordBuffer.observe` / ..., which
take a lock and touch a dict or two (prometheus_client's ``Counter.inc`` is the model). The
flusher (:mod:`celery_warden.record.flusher`) swaps the buffer out with :meth:`take` and
writes it from a background thread. Several state changes of one task inside a flush interval
coalesce into one record write.

Bounded: new records plus what the flusher still carries after a failed write stay within
``WARDEN_BUFFER_SIZE``; past it the oldest records are dropped — the carried ones first — and
every drop is counted and reported.

Durable across a killed process (worker processes): each change is also appended to this
process's spool (:mod:`celery_warden.record.spool`), one ``write()`` under the same lock,
as a tuple :func:`celery_warden.record.replay.apply_entry` can apply again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from celery_warden.keys import minute_of
from celery_warden.record import totals
from celery_warden.record.batch import Batch, BucketDelta, TaskDelta
from celery_warden.record.order import RANK_SENT, delivery_seq
from celery_warden.record.spool import Spool
from celery_warden.settings import WardenSettings

logger = logging.getLogger("celery_warden.recorder")

#: Metric buckets (name x minute pairs) and error groups kept in memory while Redis is down.
MAX_BUCKETS = 5_000


class RecordBuffer:
    """Per-process buffer of store writes (the recorder adds the flusher thread)."""

    def __init__(self, settings: WardenSettings) -> None:
        self.settings = settings
        self._reset_buffer()

    def _reset_buffer(self) -> None:
        self._lock = threading.Lock()
        self._batch = Batch()
        self._carried = 0  # task records the flusher still holds after a failed write
        self._carry_evict = 0  # oldest carried records the hot path asked the flusher to drop
        #: Tasks whose record the hot path dropped since the last take (see ``_make_room_locked``).
        self._gone: set[str] = set()
        self._in_flight: dict[str, Any] = {}  # tasks started here and not finished yet
        #: Tasks finished here, queued raw for the flusher (``TaskBuffer.end``).
        self._ended: list[tuple[Any, ...]] = []
        self._running = False
        self._spool: Spool | None = None
        #: Published tasks (a publisher's SENT records), raw tuples appended without a lock
        #: (``deque.append`` is atomic); the flusher turns them into records (see :meth:`sent`).
        self._sent: deque[tuple[Any, ...]] = deque()
        self.dropped = 0  # records dropped since start (monotonic, for reporting)
        self._dropped_unreported = 0

    def _start(self) -> None:
        """Start the flusher (the recorder's job); called on the first record."""
        self._running = True

    # -- the flusher's side ----------------------------------------------------------------
    def take(self) -> tuple[Batch, int, int, Path | None, set[str]]:
        """Swap the buffer out: (batch, drops to report, carried records to evict, the spool
        segment holding exactly this batch's changes, tasks whose record was dropped here)."""
        with self._lock:
            if self._ended:
                self._drain_ended_locked()
            batch, self._batch = self._batch, Batch()
            dropped, self._dropped_unreported = self._dropped_unreported, 0
            evict, self._carry_evict = self._carry_evict, 0
            gone, self._gone = self._gone, set()
            self._carried = 0
            segment = self._spool.rotate() if self._spool is not None else None
        sent, queue, counters = batch.sent, self._sent, batch.counters
        while queue:  # appends racing with this loop are taken by the next flush
            e = queue.popleft()
            sent.append(e)
            totals.count(counters, ("sent", e[1], e[9], e[2], ""))
        return batch, dropped, evict, segment, gone

    def _drain_ended_locked(self) -> None:
        """Merge queued finished tasks into the batch (``TaskBuffer``; nothing here)."""

    def _spooled(self, entry: tuple[Any, ...]) -> None:
        """Append one change to the spool (caller holds the lock). A spool that fails (disk
        full, a value marshal cannot write) is given up, loudly, rather than fail a task."""
        try:
            self._spool.append(entry)  # type: ignore[union-attr]
        except (OSError, ValueError) as exc:
            logger.error("warden: spool write failed (%s: %s); records are kept in memory only "
                         "from now on", type(exc).__name__, exc)
            # Its current segment's changes are all in this buffer too: a replay of it after
            # they are written would count them twice.
            self._spool.abandon()  # type: ignore[union-attr]
            self._spool = None

    def carried(self, tasks: int, dropped: int = 0) -> None:
        """The flusher still holds ``tasks`` records (it dropped ``dropped`` to stay bounded)."""
        with self._lock:
            self._carried = tasks
            self.dropped += dropped

    def holds(self, task_id: str) -> bool:
        """Whether a change to this task's record waits in this process (buffered, running,
        or carried after a failed write)."""
        return (task_id in self._batch.tasks or task_id in self._in_flight
                or any(t[0] == task_id for t in list(self._ended))
                or any(t[0] == task_id for t in list(self._sent))
                or (self._carried > 0 and self.carries(task_id)))

    def carries(self, task_id: str) -> bool:
        """Whether the flusher still carries a record of this task (the recorder knows)."""
        return False

    def note_dropped(self, count: int) -> None:
        with self._lock:
            self.dropped += count

    def buffered(self) -> int:
        with self._lock:
            return len(self._batch.tasks) + len(self._ended) + len(self._sent) + self._carried

    def sent(self, entry: tuple[Any, ...]) -> None:
        """A task was published: ``(id, name, queue, sent, priority, parent_id, root_id, eta,
        retries, host, group)``. The cheapest path Warden has — one tuple appended, no lock, no
        dict — because it runs in web requests; the flusher builds the SENT record and counts the
        ``sent`` total (:func:`celery_warden.record.chunks.sent_record`). A spooling process
        (a worker publishing) takes the durable path instead."""
        if self._spool is not None:
            from celery_warden.record.chunks import sent_fields

            static, attempt, retries = sent_fields(entry)
            self.task(entry[0], static=static, attempt=attempt, retries=retries,
                      rank=RANK_SENT if attempt else 0,
                      total=("sent", entry[1], entry[9], entry[2], ""))
            return
        if not self._running:
            self._start()
        if len(self._sent) + self._carried >= self.settings.buffer_size:
            with self._lock:
                self.dropped += 1
                self._dropped_unreported += 1
            return
        self._sent.append(entry)

    # -- hot path --------------------------------------------------------------------------
    def task(
        self,
        task_id: str,
        *,
        static: dict[str, Any] | None = None,
        attempt: dict[str, Any] | None = None,
        retries: int = 0,
        rank: int = 0,
        defers: int = 0,
        total: totals.CounterKey | None = None,
    ) -> None:
        """Merge a change to one task's record into the buffer (no I/O).

        ``rank`` orders states within one delivery (0 = no state change); ``retries`` and
        ``defers`` identify the delivery, so a write never moves a record backwards.
        ``total``: an event to count in the cumulative totals under the same lock.
        """
        if not self._running:
            self._start()
        with self._lock:
            if self._spool is not None:
                self._spooled(("T", task_id, static, attempt, retries, rank, defers, total))
            self._task_locked(task_id, static, attempt, retries, rank, defers, total)

    def _task_locked(self, task_id: str, static: dict[str, Any] | None,
                     attempt: dict[str, Any] | None, retries: int, rank: int, defers: int,
                     total: totals.CounterKey | None) -> None:
        if self._ended:  # finished tasks queued before this change come first
            self._drain_ended_locked()
        if total is not None:
            totals.count(self._batch.counters, total)
        tasks = self._batch.tasks
        delta = tasks.get(task_id)
        if delta is None:
            self._make_room_locked(tasks)
            delta = tasks[task_id] = TaskDelta()
        if static:
            delta.static.update(static)
        seq = delivery_seq(retries, defers)
        if rank and (seq, rank) >= (delta.seq, delta.rank):
            if seq > delta.seq:
                delta.attempt.clear()
            if attempt:
                delta.attempt.update(attempt)
            delta.attempt["retries"] = str(retries)
            delta.seq, delta.rank = seq, rank
        delta.updated = time.time()

    def _make_room_locked(self, tasks: dict[str, TaskDelta]) -> None:
        """Keep the total (new + carried after a failed write) within the bound, dropping the
        oldest: the carried records first (the flusher evicts them), then ours. A task dropped
        here may still have an older record carried (its STARTED, taken at a flush before it
        ended), which the flusher evicts next: ``_gone`` tells it that task is counted."""
        if len(tasks) + self._carried < self.settings.buffer_size:
            return
        if self._carried > 0:
            self._carried -= 1
            self._carry_evict += 1
        else:
            oldest = next(iter(tasks))
            del tasks[oldest]
            self._gone.add(oldest)
        self.dropped += 1
        self._dropped_unreported += 1

    def observe(
        self,
        name: str,
        ts: float,
        outcome: str,
        duration: float | None = None,
        wait: float | None = None,
        queue: str | None = None,
        retried: bool = False,
    ) -> None:
        """Count one outcome of one task name in its minute bucket (no I/O); ``retried``: a
        task that finished after at least one retry (the spec's retry rate counts those)."""
        if not self._running:
            self._start()
        with self._lock:
            if self._spool is not None:
                self._spooled(("O", name, ts, outcome, duration, wait, queue, retried))
            self._observe_locked(name, ts, outcome, duration, wait, queue, retried)

    def _observe_locked(self, name: str, ts: float, outcome: str, duration: float | None,
                        wait: float | None, queue: str | None, retried: bool = False) -> None:
        key = (name, minute_of(ts))
        minutes = self._batch.minutes
        b = minutes.get(key)
        if b is None:
            if len(minutes) >= MAX_BUCKETS:
                del minutes[next(iter(minutes))]
                self.dropped += 1
                self._dropped_unreported += 1
            b = minutes[key] = BucketDelta()
            self._batch.names.add(name)
            if queue:
                self._batch.queues.add(queue)
        b.add(outcome, duration, wait, retried)

    def heartbeat(self, hostname: str, fields: dict[str, str]) -> None:
        """Queue a worker heartbeat (latest one wins)."""
        if not self._running:
            self._start()
        with self._lock:
            self._batch.workers[hostname] = fields

    def error(self, info: dict[str, str], task_name: str, task_id: str, ts: float) -> None:
        """Count one failure in its error group (``info`` from ``error_groups.describe``)."""
        if not self._running:
            self._start()
        with self._lock:
            if self._spool is not None:
                self._spooled(("X", info, task_name, task_id, ts))
            if self._batch.add_error(info, task_name, task_id, ts, MAX_BUCKETS):
                self.dropped += 1
                self._dropped_unreported += 1

    def total(self, key: totals.CounterKey, runtime: float | None = None) -> None:
        """Count one event in the cumulative totals (and a runtime when there is one)."""
        if not self._running:
            self._start()
        with self._lock:
            if self._spool is not None:
                self._spooled(("C", key, runtime))
            totals.count(self._batch.counters, key)
            if runtime is not None:
                totals.observe(self._batch.hists, ("runtime", key[1], key[2], key[3]), runtime)

    def stat(self, name: str, amount: int = 1) -> None:
        """Add to a process-level counter kept in the store (rejected, unknown, ...)."""
        if not self._running:
            self._start()
        with self._lock:
            if self._spool is not None:
                self._spooled(("S", name, amount))
            stats = self._batch.stats
            stats[name] = stats.get(name, 0) + amount


__all__ = ["MAX_BUCKETS", "RecordBuffer"]
