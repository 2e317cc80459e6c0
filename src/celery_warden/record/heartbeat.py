"""Worker heartbeats: a bootstep in the worker's main process.

Why a thread and not the worker's event-loop timer: a heartbeat reads process statistics and
hands them to the recorder; keeping it off the consumer's event loop means a slow ``psutil`` call
or a stalled Redis never delays message handling. On a clean stop it sends a final ``offline``
beat so the worker shows as offline at once instead of after ``WARDEN_WORKER_OFFLINE_AFTER``.

Fork safety: the bootstep starts after the pool, but the pool keeps forking while the thread
runs (``--max-tasks-per-child``, a lost child replaced, autoscale), so a child may be forked
while this thread holds a lock. Everything it takes is replaced in a forked child: the
recorder's buffer lock and flusher (:mod:`celery_warden.record.recorder`), the flood filter's
lock (:mod:`celery_warden.logs.flood`), the logging module's locks (CPython); the thread itself
does not exist in the child, which never beats (only the main process's signals use it).
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import celery
import psutil
from celery import bootsteps
from celery.worker import state as worker_state

from celery_warden.services import Services, services_for
from celery_warden.version import __version__


def _rss_total(proc: psutil.Process) -> int:
    """Resident memory of the worker and its pool children."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total


class Heartbeat:
    """Collects worker facts every ``heartbeat_interval`` seconds and queues them."""

    def __init__(self, services: Services, worker: Any) -> None:
        self.services = services
        self.worker = worker
        self.hostname: str = worker.hostname
        self.started = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc = psutil.Process()

    def fields(self, state: str) -> dict[str, str]:
        w = self.worker
        try:
            queues = sorted(w.app.amqp.queues.consume_from)
        except Exception:
            queues = []
        load = os.getloadavg()
        return {
            "hostname": self.hostname,
            "state": state,
            "pid": str(os.getpid()),
            "concurrency": str(getattr(w, "concurrency", 0) or 0),
            "pool": type(getattr(w, "pool", None)).__name__,
            "queues": json.dumps(queues),
            "active": str(len(worker_state.active_requests)),
            "reserved": str(len(worker_state.reserved_requests)),
            "processed": str(worker_state.all_total_count[0]),
            "loadavg": json.dumps([round(x, 2) for x in load]),
            "rss": str(_rss_total(self._proc)),
            "started": f"{self.started:.3f}",
            "last_seen": f"{time.time():.3f}",
            "interval": str(self.services.settings.heartbeat_interval),
            "celery_version": celery.__version__,
            "warden_version": __version__,
        }

    def beat(self, state: str = "online") -> None:
        self.services.recorder.heartbeat(self.hostname, self.fields(state))

    def _loop(self) -> None:
        interval = self.services.settings.heartbeat_interval
        while not self._stop.wait(interval):
            try:
                self.beat("online")
            except Exception:
                continue

    def start(self) -> None:
        self.beat("online")
        self._thread = threading.Thread(target=self._loop, name="warden-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        self.beat("offline")
        # Not waited for here: the flusher writes it now, in the background, while the pool's
        # children exit, and the process's exit waits for what is left within the one deadline
        # this starts (a store that does not answer must not hold the exit: what is not
        # written is spooled, and replayed by a worker on this host).
        self.services.recorder.begin_exit()


class HeartbeatStep(bootsteps.StartStopStep):
    """Worker bootstep installed by :class:`~celery_warden.warden.Warden`."""

    label = "Warden heartbeat"
    requires = ("celery.worker.components:Pool",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.heartbeat: Heartbeat | None = None

    def start(self, worker: Any) -> None:
        services = services_for(worker.app)
        if services is None:
            return
        self.heartbeat = Heartbeat(services, worker)
        services.heartbeat = self.heartbeat
        self.heartbeat.start()

    def stop(self, worker: Any) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
            if self.heartbeat.services.heartbeat is self.heartbeat:
                self.heartbeat.services.heartbeat = None
            self.heartbeat = None

    shutdown = stop


__all__ = ["Heartbeat", "HeartbeatStep"]
