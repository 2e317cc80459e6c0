"""The recorder: one per process, a buffer on the hot path and a flusher thread behind it.

Handlers call the buffer's methods (:class:`~celery_warden.record.buffer.RecordBuffer`: no I/O);
a daemon thread wakes every ``WARDEN_FLUSH_INTERVAL`` seconds and runs one flush
(:class:`~celery_warden.record.flusher.Flusher`). Consequences:

* when Redis is unreachable the task never waits: what was not written is kept for the next
  attempt, within ``WARDEN_BUFFER_SIZE`` (oldest dropped and counted first);
* after a fork (prefork pool children) the child starts empty with a fresh lock, a new writer
  id and no thread; its thread starts on the first record, so nothing the parent buffered is
  written twice;
* shutdown (``worker_process_shutdown``, the heartbeat bootstep's stop, ``atexit``) flushes
  what is left;
* in worker processes (:meth:`Recorder.enable_spool`) every change is also spooled to a file,
  so what a killed process had buffered is replayed by the next worker start on the host
  (:mod:`celery_warden.record.spool`, :mod:`celery_warden.record.replay`); the spool also keeps
  DLQ entries that could not be written in time, delivered by the flusher thread.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

from celery_warden.isolation import throttle
from celery_warden.keys import Keys
from celery_warden.record.flusher import ChunkWriter, Flusher
from celery_warden.record.replay import DLQSink, ReplayReport, deliver_dlq, replay_dead
from celery_warden.record.running import TaskBuffer
from celery_warden.record.spool import Spool, spool_dir
from celery_warden.record.store import StoreWriter
from celery_warden.services import redis_client
from celery_warden.settings import WardenSettings

logger = logging.getLogger("celery_warden.recorder")


#: Seconds between attempts to deliver spooled DLQ entries.
DLQ_RETRY_EVERY = 1.0
#: Longest a spooling process's exit waits for its final flush.
EXIT_DEADLINE = 0.5
#: Longest wait between flush attempts while Redis is away (records reach it at most this late
#: once it answers again).
DOWN_RETRY_MAX = 2.0


class Recorder(TaskBuffer):
    """Per-process buffer of store writes with a background flusher."""

    def __init__(self, settings: WardenSettings,
                 writer_factory: Callable[[], ChunkWriter] | None = None) -> None:
        super().__init__(settings)
        self._writer_factory: Callable[[], ChunkWriter] = (
            writer_factory or (lambda: StoreWriter(settings)))
        self._init_thread()
        #: Writes a spooled DLQ entry to the DLQ (set by the DLQ layer; raises on failure).
        self.dlq_sink: DLQSink | None = None
        self._spooling = False
        self._dlq_next = 0.0
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _call(ref, "_after_fork"))
        atexit.register(lambda: _call(ref, "stop"))

    def _init_thread(self) -> None:
        self.flusher = Flusher(self, self._writer_factory)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._exit_by: float | None = None  # see begin_exit

    def _after_fork(self) -> None:
        """In a forked child: forget the parent's buffers, locks, thread, connections and
        spool files (the child spools to its own once it calls :meth:`enable_spool`)."""
        if self._spool is not None:
            self._spool.forget()
        self._reset_buffer()
        self._init_thread()

    # -- the spool ---------------------------------------------------------------------------
    def enable_spool(self) -> bool:
        """Spool every change of this process from now on (worker processes)."""
        directory = spool_dir(self.settings.spool_dir, self.settings.key_prefix)
        if directory is None or self._spool is not None:
            return False
        spool = Spool(directory, self.flusher.writer_id)
        if not spool.open():
            return False
        with self._lock:
            self._spool = spool
        self._spooling = True
        return True

    def spool_dlq(self, fields: dict[str, str]) -> bool:
        """Keep a DLQ entry that could not be written; False without a spool, or when the
        spooled entries reached ``WARDEN_SPOOL_MAX_MB`` (a failure storm during a long outage
        must not fill the disk: the caller logs the entry in full at CRITICAL instead)."""
        spool = self._spool
        if spool is None:
            return False
        with self._lock:
            if spool.dlq_bytes() >= self.settings.spool_max_mb * 1024 * 1024:
                return False
            spool.append_dlq(fields)
        self._dlq_next = 0.0
        if not self._running:
            self._start()
        self._wake.set()
        return True

    def deliver_spooled_dlq(self) -> None:
        """Hand spooled DLQ entries to the DLQ (flusher thread; at most once a second)."""
        spool = self._spool
        if spool is None or self.dlq_sink is None or time.monotonic() < self._dlq_next:
            return
        sending = spool.sending_path
        with self._lock:
            if not sending.exists():
                if not spool.dlq_path.exists():
                    return
                os.replace(spool.dlq_path, sending)
        if not deliver_dlq(sending, self.dlq_sink):
            self._dlq_next = time.monotonic() + DLQ_RETRY_EVERY

    def replay_dead(self, after: Callable[[ReplayReport], None] | None = None
                    ) -> ReplayReport | None:
        """Replay the spools of dead processes on this host (a worker's start, then the
        worker main's reaper every second: :mod:`celery_warden.record.reaper`)."""
        directory = spool_dir(self.settings.spool_dir, self.settings.key_prefix)
        if directory is None or not directory.is_dir():
            return None

        def make(segments: list[Path]) -> tuple[TaskBuffer, Flusher]:
            # A bare buffer and flusher, no Recorder: no thread, and nothing registered per
            # replay (a Recorder registers fork and exit hooks that live as long as the process).
            buf = TaskBuffer(self.settings)
            flusher = Flusher(buf, self._writer_factory)
            flusher.adopt(segments)
            return buf, flusher

        return replay_dead(directory, lambda: redis_client(self.settings.redis_url),
                           Keys(self.settings.key_prefix), make, self.dlq_sink,
                           own=self.flusher.writer_id, after=after)

    # -- the flusher thread ----------------------------------------------------------------
    def _start(self) -> None:
        with self._lock:
            if self._running or self._stopping.is_set():
                return
            self._running = True
            self._thread = threading.Thread(target=self._loop, name="warden-flusher",
                                            daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        interval = self.settings.flush_interval
        # While Redis is away, attempts back off (doubling up to DOWN_RETRY_MAX): each one
        # costs a connection attempt and, with a spool, a segment file (pending.MAX_SEGMENTS).
        longest = max(interval, DOWN_RETRY_MAX)
        wait = interval
        while not self._stopping.is_set():
            self._wake.wait(wait)
            self._wake.clear()
            try:
                if self.flush():
                    if wait > interval:  # the store answers again: spooled DLQ entries now
                        self._dlq_next = 0.0
                    wait = interval
                else:
                    wait = min(wait * 2, longest)
            except Exception:  # a bug must not end this process's flushes for good
                throttle.report("Recorder.flush")
            if self._spool is not None:
                try:
                    self.deliver_spooled_dlq()
                except OSError as exc:
                    logger.warning("warden: spooled DLQ entries: %s", exc)

    def flush(self) -> bool:
        """Write everything buffered now; returns False if Redis could not be reached."""
        return self.flusher.flush()

    def begin_exit(self) -> None:
        """The process is stopping (a worker's shutdown began: its heartbeat's last beat). The
        flusher writes what is buffered now, in the background; with a spool, every exit flush
        from here on — :meth:`stop` at exit, after the pool's children took theirs — shares
        one :data:`EXIT_DEADLINE` while the store is away (:meth:`Flusher.away`), instead of
        each waiting a deadline of its own for a store that does not answer (a black-holed
        store cost a worker's SIGTERM up to ~1.1 s more than a healthy one: the heartbeat's
        flush, then the children's, then the exit's)."""
        if self._exit_by is None:
            self._exit_by = time.monotonic() + EXIT_DEADLINE
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the flusher and write what is left (called on clean shutdown and at exit).

        With a spool, what is left is safe on disk, so a store that does not answer delays the
        exit by at most :data:`EXIT_DEADLINE` in all, counted from :meth:`begin_exit` when the
        shutdown called it (the next worker start replays the rest)."""
        self._stopping.set()
        self._wake.set()
        spooled = self._spool is not None
        wait = min(timeout, EXIT_DEADLINE) if spooled else timeout
        deadline = time.monotonic() + wait
        if spooled and self._exit_by is not None and self.flusher.away(EXIT_DEADLINE / 2):
            # Only while the store is away: a healthy store gets its full deadline, however
            # long the pool's children took (a threads pool finishing its tasks, say).
            deadline = min(deadline, self._exit_by)
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(max(deadline - time.monotonic(), 0.0))
        self._running = False
        flushed = self.flush_within(max(deadline - time.monotonic(), 0.05)) if spooled else (
            self._final_flush())
        spool = self._spool
        if spool is not None:
            with self._lock:
                self._spool = None
            spool.close(remove=flushed and not self.flusher.pending_segments()
                        and not spool.leftovers())

    def _final_flush(self) -> bool:
        try:
            flushed = self.flush()
            if self._spool is not None:
                self._dlq_next = 0.0
                self.deliver_spooled_dlq()
            return flushed
        except Exception:
            logger.exception("warden: final flush failed")
            return False

    def flush_within(self, seconds: float) -> bool:
        """Flush, waiting at most ``seconds`` for it (the flush goes on in the background);
        True when it finished and Redis took everything."""
        result: list[bool] = []
        helper = threading.Thread(target=lambda: result.append(self._final_flush()),
                                  name="warden-final-flush", daemon=True)
        try:
            helper.start()
        except RuntimeError:  # interpreter shutting down (atexit): no new threads
            return self._final_flush()
        helper.join(seconds)
        return bool(result and result[0])

    def restart(self) -> None:
        """Allow use again after :meth:`stop` (the next record starts a new thread; a spool
        used before is opened again)."""
        self._stopping.clear()
        self._running = False
        self._exit_by = None
        if self._spooling:
            self.enable_spool()

    def carries(self, task_id: str) -> bool:
        return self.flusher.carries(task_id)

    def stats(self) -> dict[str, int]:
        f = self.flusher
        return {
            "buffered": self.buffered(),
            "dropped": self.dropped,
            "flushes": f.flushes,
            "flush_failures": f.failures,
            "written": f.written,
        }


def _call(ref: weakref.ref[Recorder], method: str) -> None:
    obj = ref()
    if obj is not None:
        getattr(obj, method)()


__all__ = ["Recorder"]
