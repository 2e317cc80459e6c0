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
  what is left.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Callable

from celery_warden.record.buffer import RecordBuffer
from celery_warden.record.flusher import ChunkWriter, Flusher
from celery_warden.record.store import StoreWriter
from celery_warden.settings import WardenSettings

logger = logging.getLogger("celery_warden.recorder")


class Recorder(RecordBuffer):
    """Per-process buffer of store writes with a background flusher."""

    def __init__(self, settings: WardenSettings,
                 writer_factory: Callable[[], ChunkWriter] | None = None) -> None:
        super().__init__(settings)
        self._writer_factory: Callable[[], ChunkWriter] = (
            writer_factory or (lambda: StoreWriter(settings)))
        self._init_thread()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _call(ref, "_after_fork"))
        atexit.register(lambda: _call(ref, "stop"))

    def _init_thread(self) -> None:
        self.flusher = Flusher(self, self._writer_factory)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def _after_fork(self) -> None:
        """In a forked child: forget the parent's buffers, locks, thread and connections."""
        self._reset_buffer()
        self._init_thread()

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
        while not self._stopping.is_set():
            self._wake.wait(interval)
            self._wake.clear()
            self.flush()

    def flush(self) -> bool:
        """Write everything buffered now; returns False if Redis could not be reached."""
        return self.flusher.flush()

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
