"""The hot path: buffer task events in memory, flush them to Redis from a background thread.

A signal handler calls :meth:`Recorder.task` / :meth:`Recorder.observe`, which take a lock and
touch a dict or two (prometheus_client's ``Counter.inc`` is the model: no I/O where the work
happens). A daemon thread per process wakes every ``flush_interval`` seconds, swaps the buffers
out and writes them with one script call. Consequences:

* several state changes of one task inside an interval coalesce into one write;
* when Redis is unreachable the task never waits: the batch is kept for the next attempt, the
  buffer is bounded by ``buffer_size`` and the oldest records are dropped (and counted) first;
* after a fork (prefork pool children) the child starts empty with a fresh lock and starts its
  own thread lazily on first use, so nothing inherited from the parent is written twice.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

import redis

from celery_warden.histogram import bucket_index
from celery_warden.keys import hour_of, minute_of
from celery_warden.settings import WardenSettings
from celery_warden.store import (
    RECENT_IDS,
    Batch,
    BucketDelta,
    ErrorDelta,
    StoreWriter,
    TaskDelta,
)

logger = logging.getLogger("celery_warden.recorder")

#: Seconds between repeated "Redis unreachable" warnings from one process.
WARN_EVERY = 30.0
#: Metric buckets kept in memory while Redis is down (name x minute pairs).
MAX_BUCKETS = 5_000


#: Deferrals (circuit open, rate limited) counted per retry in the delivery order.
MAX_DEFERS = 999


def delivery_seq(retries: int, defers: int = 0) -> int:
    """Order of one delivery of a task id: retries first, then deferrals within a retry."""
    return retries * (MAX_DEFERS + 1) + min(max(defers, 0), MAX_DEFERS)


#: Ordering of states within one delivery; a write never moves a record backwards.
RANK_SENT, RANK_RECEIVED, RANK_STARTED, RANK_RETRY, RANK_FINAL = 1, 2, 3, 4, 5


class Running(Protocol):
    """A task running in this process, as the signal handlers describe it to the recorder."""

    flushed: bool
    retries: int
    defers: int

    def start_fields(self) -> tuple[dict[str, Any], dict[str, Any], int, int]:
        """(static fields, STARTED attempt fields, retries, defers), values unformatted."""
        ...


class Recorder:
    """Per-process buffer of store writes with a background flusher."""

    def __init__(
        self,
        settings: WardenSettings,
        writer_factory: Callable[[], StoreWriter] | None = None,
    ) -> None:
        self.settings = settings
        self._writer_factory = writer_factory or (lambda: StoreWriter(settings))
        self._writer: StoreWriter | None = None
        self._init_state()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _call(ref, "_after_fork"))
        atexit.register(lambda: _call(ref, "stop"))

    # -- state -----------------------------------------------------------------------------
    def _init_state(self) -> None:
        self._lock = threading.Lock()
        # Serialises flushes: the flusher thread, Heartbeat.stop() and stop() may flush at once,
        # and two failed writes would otherwise each replace the other's carried batch.
        self._flush_lock = threading.Lock()
        self._batch = Batch()
        self._carry = Batch()  # a batch whose write failed, retried first
        self._carry_len = 0  # its task count, read on the hot path to bound the total
        self._carry_evict = 0  # oldest carried records the hot path asked the flusher to drop
        self._in_flight: dict[str, Running] = {}  # tasks started here and not finished yet
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = False
        self.dropped = 0  # records dropped since start (monotonic, for reporting)
        self._dropped_unreported = 0
        self.flushes = 0
        self.flush_failures = 0
        self.written = 0
        self._last_warning = 0.0
        self._down_since: float | None = None

    def _after_fork(self) -> None:
        """In a forked child: forget the parent's buffers, lock, thread and connections."""
        self._init_state()
        self._writer = None

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
    ) -> None:
        """Merge a change to one task's record into the buffer (no I/O).

        ``rank`` orders states within one delivery (0 = no state change); ``retries`` and
        ``defers`` identify the delivery, so a write never moves a record backwards.
        """
        if not self._running:
            self._start()
        now = time.time()
        with self._lock:
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
            delta.updated = now

    # -- a task running in this process (pool child) ----------------------------------------
    def begin(self, task_id: str, run: Running) -> None:
        """A task started here. Nothing is written yet: if it is still running at the next
        flush, the flusher writes its STARTED record then (see :meth:`_started_records`), so a
        fast task costs one record write, built off the task's path."""
        if not self._running:
            self._start()
        self._in_flight[task_id] = run

    def end(self, task_id: str, run: Running, name: str, final: dict[str, Any], rank: int,
            outcome: str, finished: float, runtime: float, wait: float | None) -> None:
        """A task finished here: its record and its metrics, under one lock acquisition.

        The record keeps a reference to ``run``; its start fields are expanded by the store at
        flush time (:meth:`TaskDelta.run`), so nothing is built or formatted here.
        """
        self._in_flight.pop(task_id, None)
        if not self._running:
            self._start()
        seq = delivery_seq(run.retries, run.defers)
        final["retries"] = run.retries
        with self._lock:
            tasks = self._batch.tasks
            delta = tasks.get(task_id)
            if delta is None:
                self._make_room_locked(tasks)
                tasks[task_id] = TaskDelta(attempt=final, seq=seq, rank=rank, updated=finished,
                                           run=run)
            else:
                if (seq, rank) >= (delta.seq, delta.rank):
                    if seq > delta.seq:
                        delta.attempt.clear()
                    delta.attempt.update(final)
                    delta.seq, delta.rank = seq, rank
                delta.run = run
                delta.updated = finished
            self._observe_locked(name, finished, outcome, runtime, wait, None)

    def _make_room_locked(self, tasks: dict[str, TaskDelta]) -> None:
        """Keep the total (new + carried after a failed write) within the bound, dropping the
        oldest: the carried batch first (the flusher evicts from it), then ours."""
        if len(tasks) + self._carry_len < self.settings.buffer_size:
            return
        if self._carry_len > 0:
            self._carry_len -= 1
            self._carry_evict += 1
        else:
            del tasks[next(iter(tasks))]
        self.dropped += 1
        self._dropped_unreported += 1

    def forget(self, task_id: str) -> None:
        """A task that started here will not finish here (its outcome is reported elsewhere)."""
        self._in_flight.pop(task_id, None)

    def _started_records(self) -> None:
        """STARTED records for tasks still running at flush time (flusher thread)."""
        for task_id, run in list(self._in_flight.items()):  # list(): atomic under the GIL
            if run.flushed:
                continue
            run.flushed = True
            static, attempt, retries, defers = run.start_fields()
            self.task(task_id, static=static, attempt=attempt, retries=retries,
                      rank=RANK_STARTED, defers=defers)

    def observe(
        self,
        name: str,
        ts: float,
        outcome: str,
        duration: float | None = None,
        wait: float | None = None,
        queue: str | None = None,
    ) -> None:
        """Count one outcome of one task name in its minute bucket (no I/O)."""
        if not self._running:
            self._start()
        with self._lock:
            self._observe_locked(name, ts, outcome, duration, wait, queue)

    def _observe_locked(self, name: str, ts: float, outcome: str, duration: float | None,
                        wait: float | None, queue: str | None) -> None:
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
        c = b.counts
        c[outcome] = c.get(outcome, 0) + 1
        if duration is not None:
            c["done"] = c.get("done", 0) + 1
            h = f"h{bucket_index(duration)}"
            c[h] = c.get(h, 0) + 1
            b.floats["dsum"] = b.floats.get("dsum", 0.0) + duration
            if b.dmin is None or duration < b.dmin:
                b.dmin = duration
            if b.dmax is None or duration > b.dmax:
                b.dmax = duration
        if wait is not None:
            c["wn"] = c.get("wn", 0) + 1
            b.floats["wsum"] = b.floats.get("wsum", 0.0) + max(wait, 0.0)

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
        fp = info["fingerprint"]
        with self._lock:
            errors = self._batch.errors
            e = errors.get(fp)
            if e is None:
                if len(errors) >= MAX_BUCKETS:
                    del errors[next(iter(errors))]
                    self.dropped += 1
                    self._dropped_unreported += 1
                e = errors[fp] = ErrorDelta(
                    info={k: v for k, v in info.items() if k != "fingerprint"}, first=ts
                )
            e.count += 1
            e.last = ts
            e.names[task_name] = e.names.get(task_name, 0) + 1
            e.task_ids.append(task_id)
            if len(e.task_ids) > RECENT_IDS:
                del e.task_ids[0]
            minute = minute_of(ts)
            e.minutes[minute] = e.minutes.get(minute, 0) + 1

    def stat(self, name: str, amount: int = 1) -> None:
        """Add to a process-level counter kept in the store (rejected, unknown, ...)."""
        if not self._running:
            self._start()
        with self._lock:
            stats = self._batch.stats
            stats[name] = stats.get(name, 0) + amount

    # -- flusher ---------------------------------------------------------------------------
    def _start(self) -> None:
        with self._lock:
            if self._running or self._stopping.is_set():
                return
            self._running = True
            self._thread = threading.Thread(
                target=self._loop, name="warden-flusher", daemon=True
            )
            self._thread.start()

    def _loop(self) -> None:
        interval = self.settings.flush_interval
        while not self._stopping.is_set():
            self._wake.wait(interval)
            self._wake.clear()
            self.flush()

    def flush(self) -> bool:
        """Write everything buffered; returns False if Redis could not be reached."""
        with self._flush_lock:
            return self._flush()

    def _flush(self) -> bool:
        if self._in_flight:
            self._started_records()
        with self._lock:
            batch, self._batch = self._batch, Batch()
            dropped_now, self._dropped_unreported = self._dropped_unreported, 0
            evict, self._carry_evict = self._carry_evict, 0
            carry, self._carry, self._carry_len = self._carry, Batch(), 0
        for tid in list(carry.tasks)[:evict]:  # the hot path made room at the carry's expense
            del carry.tasks[tid]
        if carry:
            _merge_batches(carry, batch)
            batch = carry
        if dropped_now:
            batch.stats["dropped"] = batch.stats.get("dropped", 0) + dropped_now
        if not batch:
            return True
        _rollup_hours(batch)
        try:
            if self._writer is None:
                self._writer = self._writer_factory()
            self.written += self._writer.write(batch)
        except redis.ResponseError as exc:
            # Redis answered but refused the batch (e.g. a key of the wrong type under our
            # prefix, or a script error): retrying the same batch would fail forever and block
            # every later write of this process. Drop it, count it, say so.
            self.flush_failures += 1
            lost = len(batch.tasks) + sum(sum(b.counts.values()) for b in batch.minutes.values())
            self.dropped += lost
            self._dropped_unreported += lost
            logger.error("warden: Redis rejected a batch of %d records (%s); dropped",
                         lost, exc)
            return False
        except (redis.RedisError, OSError) as exc:
            self.flush_failures += 1
            batch.hours.clear()  # derived again from the minutes on the next attempt
            trimmed = self._trim(batch)
            with self._lock:
                self._carry, self._carry_len = trimmed, len(trimmed.tasks)
            self._warn_down(exc)
            return False
        self.flushes += 1
        if self._down_since is not None:
            logger.warning(
                "warden: Redis reachable again after %.1fs; %d records dropped meanwhile "
                "(buffer bound %d)", time.time() - self._down_since,
                batch.stats.get("dropped", 0), self.settings.buffer_size,
            )
            self._down_since = None
        return True

    def _trim(self, batch: Batch) -> Batch:
        over = len(batch.tasks) - self.settings.buffer_size
        if over > 0:
            for tid in list(batch.tasks)[:over]:
                del batch.tasks[tid]
            self.dropped += over
            batch.stats["dropped"] = batch.stats.get("dropped", 0) + over
        over = len(batch.minutes) - MAX_BUCKETS
        if over > 0:
            for key in list(batch.minutes)[:over]:
                del batch.minutes[key]
            self.dropped += over
            batch.stats["dropped"] = batch.stats.get("dropped", 0) + over
        return batch

    def _warn_down(self, exc: Exception) -> None:
        now = time.time()
        if self._down_since is None:
            self._down_since = now
        if now - self._last_warning >= WARN_EVERY:
            self._last_warning = now
            logger.warning(
                "warden: cannot write to Redis (%s: %s); tasks keep running, buffering up to "
                "%d records", type(exc).__name__, exc, self.settings.buffer_size,
            )

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the flusher and write what is left (called on clean shutdown and at exit)."""
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout)
        self._running = False
        try:
            self.flush()
        except Exception:
            logger.exception("warden: final flush failed")

    def restart(self) -> None:
        """Allow use again after :meth:`stop` (the next record starts a new thread)."""
        self._stopping.clear()
        self._running = False

    def stats(self) -> dict[str, int]:
        with self._lock:
            buffered = len(self._batch.tasks) + self._carry_len
        return {
            "buffered": buffered,
            "dropped": self.dropped,
            "flushes": self.flushes,
            "flush_failures": self.flush_failures,
            "written": self.written,
        }


def _merge_batches(into: Batch, newer: Batch) -> None:
    for tid, d in newer.tasks.items():
        old = into.tasks.get(tid)
        if old is None:
            into.tasks[tid] = d
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
        if key in into.minutes:
            into.minutes[key].merge(b)
        else:
            into.minutes[key] = b
    into.names |= newer.names
    into.queues |= newer.queues
    into.workers.update(newer.workers)
    for fp, e in newer.errors.items():
        if fp in into.errors:
            into.errors[fp].merge(e)
        else:
            into.errors[fp] = e
    for k, v in newer.stats.items():
        into.stats[k] = into.stats.get(k, 0) + v


def _rollup_hours(batch: Batch) -> None:
    batch.hours.clear()
    for (name, minute), b in batch.minutes.items():
        key = (name, hour_of(minute))
        h = batch.hours.get(key)
        if h is None:
            h = batch.hours[key] = BucketDelta()
        h.merge(b)


def _call(ref: weakref.ref[Recorder], method: str) -> None:
    obj = ref()
    if obj is not None:
        getattr(obj, method)()


__all__ = ["Recorder"]
