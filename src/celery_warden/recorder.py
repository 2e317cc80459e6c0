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

import redis

from celery_warden.histogram import bucket_index
from celery_warden.keys import hour_of, minute_of
from celery_warden.settings import WardenSettings
from celery_warden.store import Batch, BucketDelta, StoreWriter, TaskDelta

logger = logging.getLogger("celery_warden.recorder")

#: Seconds between repeated "Redis unreachable" warnings from one process.
WARN_EVERY = 30.0
#: Metric buckets kept in memory while Redis is down (name x minute pairs).
MAX_BUCKETS = 5_000


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
        self._batch = Batch()
        self._carry = Batch()  # a batch whose write failed, retried first
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
        static: dict[str, str] | None = None,
        attempt: dict[str, str] | None = None,
        retries: int = 0,
        rank: int = 0,
    ) -> None:
        """Merge a change to one task's record into the buffer (no I/O)."""
        if not self._running:
            self._start()
        now = time.time()
        with self._lock:
            tasks = self._batch.tasks
            delta = tasks.get(task_id)
            if delta is None:
                if len(tasks) >= self.settings.buffer_size:
                    del tasks[next(iter(tasks))]
                    self.dropped += 1
                    self._dropped_unreported += 1
                delta = tasks[task_id] = TaskDelta()
            if static:
                delta.static.update(static)
            if rank and (retries, rank) >= (delta.retries, delta.rank):
                if retries > delta.retries:
                    delta.attempt.clear()
                if attempt:
                    delta.attempt.update(attempt)
                delta.retries, delta.rank = retries, rank
            delta.updated = now

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
        key = (name, minute_of(ts))
        with self._lock:
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
        with self._lock:
            batch, self._batch = self._batch, Batch()
            dropped_now, self._dropped_unreported = self._dropped_unreported, 0
        carry = self._carry
        if carry:
            _merge_batches(carry, batch)
            batch = carry
            self._carry = Batch()
        if dropped_now:
            batch.stats["dropped"] = batch.stats.get("dropped", 0) + dropped_now
        if not batch:
            return True
        _rollup_hours(batch)
        try:
            if self._writer is None:
                self._writer = self._writer_factory()
            self.written += self._writer.write(batch)
        except (redis.RedisError, OSError) as exc:
            self.flush_failures += 1
            batch.hours.clear()  # derived again from the minutes on the next attempt
            self._carry = self._trim(batch)
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
            buffered = len(self._batch.tasks) + len(self._carry.tasks)
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
        if d.rank and (d.retries, d.rank) >= (old.retries, old.rank):
            if d.retries > old.retries:
                old.attempt.clear()
            old.attempt.update(d.attempt)
            old.retries, old.rank = d.retries, d.rank
        old.updated = max(old.updated, d.updated)
    for key, b in newer.minutes.items():
        if key in into.minutes:
            into.minutes[key].merge(b)
        else:
            into.minutes[key] = b
    into.names |= newer.names
    into.queues |= newer.queues
    into.workers.update(newer.workers)
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
