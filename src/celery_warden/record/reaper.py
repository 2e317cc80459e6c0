"""The worker main process replays the spools of processes that die while it runs.

Why not only at the next worker start: a SIGKILLed (or OOM-killed) pool child is replaced by
the pool while the worker goes on, so a start may be days away; until then the outcomes the
child had buffered stay unrecorded — finished tasks shown STARTED or SENT, counts short.

A daemon thread in the worker's main process looks every :data:`REAP_EVERY` seconds for spool
lock files nobody holds (:func:`celery_warden.record.replay.replay_dead`: listing a directory of
a few files and one non-blocking ``flock`` each, ~10 µs a look), and replays what it finds the
way a worker start does — exactly once, against the store's per-writer high-water marks. Its
first look is the start-time replay (whatever processes that died before this worker left).
A dead process's spool is found on any worker of the host, not only its own worker's.

It also settles tasks that succeeded in a pool child killed before its ``task_postrun``
(:mod:`celery_warden.record.lost`): only after a look that began once the child was dead and
left no dead spool behind can the store say whether the child's outcome arrived.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

import redis

from celery_warden.keys import Keys
from celery_warden.record.lost import LostSuccess, settle
from celery_warden.record.recorder import Recorder
from celery_warden.record.replay import ReplayReport
from celery_warden.services import redis_client

logger = logging.getLogger("celery_warden.spool")

#: Seconds between looks for dead processes' spools.
REAP_EVERY = 1.0


class SpoolReaper:
    """Replays dead processes' spools on this host while the worker runs (main process)."""

    def __init__(self, recorder: Recorder, every: float = REAP_EVERY) -> None:
        self.recorder = recorder
        self.every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.replays = 0  # looks that replayed something (for tests and the log)
        self._lost: deque[tuple[float, LostSuccess]] = deque()
        self.settled = 0  # lost jobs' successes recorded by this process

    def lost_success(self, lost: LostSuccess) -> None:
        """A pool child died after storing this task's SUCCESS (from the worker's failure
        path: no I/O here); settled by a later look."""
        self._lost.append((time.monotonic(), lost))

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="warden-spool-reaper",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while True:
            self.reap()
            if self._stop.wait(self.every):
                return

    def reap(self) -> None:
        """One look; never raises (a store that does not answer is tried at the next one)."""
        began = time.monotonic()
        try:
            report = self.recorder.replay_dead(
                after=lambda r: self._settle(began, r) if self._lost else None)
        except Exception:
            logger.exception("warden: replaying the spools of dead processes failed")
            return
        if report is None and self._lost:  # no spool: nothing a replay could still bring
            self._settle(began, ReplayReport())
        if report is not None and (report.entries or report.dlq_entries):
            self.replays += 1

    def _settle(self, began: float, report: ReplayReport) -> None:
        """Under the host's replay guard, every dead spool replayed: decide the lost jobs
        registered before this look began."""
        if report.kept:
            return
        settings = self.recorder.settings
        client = redis_client(settings.redis_url)
        keys = Keys(settings.key_prefix)
        try:
            while self._lost and self._lost[0][0] < began:
                if settle(self.recorder, client, keys, self._lost[0][1]):
                    self.settled += 1
                self._lost.popleft()
        except redis.RedisError as exc:
            logger.warning("warden: a lost job's success not settled yet (%s: %s)",
                           type(exc).__name__, exc)
        finally:
            client.close()


__all__ = ["REAP_EVERY", "SpoolReaper"]
