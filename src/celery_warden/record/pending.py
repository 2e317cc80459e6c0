"""The spool segments one flusher has taken and Redis has not confirmed yet, bounded.

Why a bound: the flusher takes a new segment at every flush attempt (:meth:`Spool.rotate`), and
while the store is away none is confirmed, so they pile up — against a refused store, 40,000
tasks left 200 files and 6.8 MB per process, a day at 1,000 tasks/s would leave ~15 GB and, at
one attempt every 0.25 s, 345,600 files; most of it records the buffer bound
(``WARDEN_BUFFER_SIZE``) had dropped already, which a replay after a kill would then have
written while a surviving process would not. So at most ``WARDEN_SPOOL_MAX_MB`` and
:data:`MAX_SEGMENTS` files stay, the oldest deleted first (the newest always stays): what they
held that the buffer still holds is written when the store answers; only a process killed
before then loses it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from celery_warden.record.spool import Spool
from celery_warden.settings import WardenSettings

logger = logging.getLogger("celery_warden.recorder")

#: Segment files one process keeps unwritten (one per flush attempt while the store is away:
#: with the recorder's back-off, about half an hour of attempts).
MAX_SEGMENTS = 1000


class PendingSegments:
    """Segments whose changes may not be in Redis yet, and those not sealed into chunks yet."""

    def __init__(self, settings: WardenSettings) -> None:
        self.settings = settings
        self.paths: list[Path] = []
        self.unsealed: list[Path] = []
        self._sizes: dict[Path, int] = {}  # read once, when a segment is added
        self.bytes = 0
        self.shed = 0  # bytes deleted unwritten during this outage

    def add(self, path: Path) -> None:
        """One more segment taken (unsealed: its changes are not in a chunk yet)."""
        try:
            size = os.stat(path).st_size
        except OSError:
            size = 0
        self.paths.append(path)
        self.unsealed.append(path)
        self._sizes[path] = size
        self.bytes += size

    def mark(self, first: int, last: int, writer: str) -> None:
        """The unsealed segments' changes are in chunks ``first..last`` of ``writer`` now
        (written before those chunks are applied: a replay must know what may be in Redis)."""
        if self.unsealed:
            Spool.mark(self.unsealed, first, last, writer)
            self.unsealed = []

    def confirmed(self) -> None:
        """Redis took everything: the segments go."""
        Spool.remove(self.paths)
        self.paths, self.unsealed = [], []
        self._sizes.clear()
        self.bytes = 0

    def bound(self) -> None:
        """The store is away: keep within ``WARDEN_SPOOL_MAX_MB`` and :data:`MAX_SEGMENTS`,
        deleting the oldest (said once per outage)."""
        cap = self.settings.spool_max_mb * 1024 * 1024
        shed = 0
        while len(self.paths) > 1 and (self.bytes > cap or len(self.paths) > MAX_SEGMENTS):
            path = self.paths.pop(0)
            size = self._sizes.pop(path, 0)
            self.bytes -= size
            shed += size
            if path in self.unsealed:
                self.unsealed.remove(path)
            with contextlib.suppress(OSError):
                path.unlink()
        if shed and not self.shed:
            logger.warning(
                "warden: Redis still unreachable; this process's spool reached its bound "
                "(WARDEN_SPOOL_MAX_MB=%d, %d files): the oldest unwritten segments are deleted "
                "from now on (what the buffer still holds is written when Redis answers; a "
                "process killed before then loses it)", self.settings.spool_max_mb, MAX_SEGMENTS)
        self.shed += shed

    def recovered(self) -> str:
        """The store answers again: what the bound deleted meanwhile, for the log line."""
        shed, self.shed = self.shed, 0
        return (f"; {shed / 1048576:.1f} MB of spool deleted unwritten (WARDEN_SPOOL_MAX_MB)"
                if shed else "")


__all__ = ["MAX_SEGMENTS", "PendingSegments"]
