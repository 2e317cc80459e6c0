"""The flush: take the buffer, seal it into numbered chunks, apply them in order, carry failures.

One flush, serialised by a lock (the flusher thread, a heartbeat's stop and ``stop()`` may flush
at once):

1. STARTED records for tasks still running here; take the buffer (:meth:`RecordBuffer.take`).
2. Apply the chunks a failed flush left (in number order). Until they are all in, new records
   wait unsealed in a carried batch, where later changes of a task still coalesce.
3. Seal the carried batch (hour roll-ups derived, values formatted) and apply its chunks.

A chunk that may have been applied is tried again with its number, never merged with newer
records, so Redis can recognise a repeat (see :mod:`celery_warden.record.chunks`). Redis
unreachable: what is left stays carried, within the buffer bound (oldest dropped first, each
drop counted); a warning every ``WARN_EVERY`` seconds, and one line when Redis is back. Redis
refusing a chunk for good (a wrong key type under our prefix, a script error) would refuse it
forever: that chunk is dropped, counted and logged, and the rest goes on; a refusal that passes
(``READONLY`` during a failover, ``OOM``) is treated like an outage: kept and tried again.

The spool segments of what is not written yet stay on disk (:mod:`.spool`), one per flush
attempt. During a long outage they are bounded too (:meth:`Flusher._bound_spool`): at most
``WARDEN_SPOOL_MAX_MB`` and :data:`MAX_SEGMENTS` files per process, the oldest deleted first.
Most of what they hold the buffer bound had dropped already; the rest is still in memory and
written when the store answers; only a process killed before then loses it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import redis

from celery_warden.record.batch import Batch
from celery_warden.record.buffer import MAX_BUCKETS
from celery_warden.record.chunks import Chunk, Chunker
from celery_warden.record.running import TaskBuffer
from celery_warden.record.spool import Spool
from celery_warden.services import refusal

logger = logging.getLogger("celery_warden.recorder")

#: Seconds between repeated "Redis unreachable" warnings from one process.
WARN_EVERY = 30.0
#: Per-minute counts one carried error group keeps while Redis is down (a day).
MAX_ERROR_MINUTES = 1440
#: Spool segment files one process keeps unwritten (one per flush attempt while the store is
#: away: with the recorder's back-off, about half an hour of attempts).
MAX_SEGMENTS = 1000


class ChunkWriter(Protocol):
    """Applies one chunk (:class:`celery_warden.record.store.StoreWriter`)."""

    def apply(self, chunk: Chunk) -> int: ...


class Flusher:
    """Writes one buffer's batches; one per recorder and process."""

    def __init__(self, buffer: TaskBuffer, writer_factory: Callable[[], ChunkWriter]) -> None:
        self.buffer = buffer
        self.settings = buffer.settings
        self._writer_factory = writer_factory
        self._writer: ChunkWriter | None = None
        self._chunker = Chunker(self.settings)
        self._lock = threading.Lock()
        self._sealed: deque[Chunk] = deque()  # in number order; the first may be applied
        self._carry = Batch()  # records taken while sealed chunks were still pending
        self.flushes = 0
        self.failures = 0
        self.written = 0
        self._last_warning = 0.0
        self._down_since: float | None = None
        self._dropped_since_down = 0
        #: Spool segments whose changes are not confirmed yet, and those not sealed yet.
        self._segments: list[Path] = []
        self._unsealed: list[Path] = []
        #: Bytes of each pending segment (read once, when it is taken) and their sum.
        self._sizes: dict[Path, int] = {}
        self._spool_bytes = 0
        self._spool_shed = 0  # bytes of segments deleted unwritten during this outage

    @property
    def writer_id(self) -> str:
        """This process's chunk writer id (its spool files carry it too)."""
        return self._chunker.writer_id

    def flush(self) -> bool:
        """Write everything buffered; False if Redis could not be reached (kept for later)."""
        with self._lock:
            return self._flush()

    def _flush(self) -> bool:
        buffer = self.buffer
        buffer.started_records()
        batch, dropped, evict, segment = buffer.take()
        if segment is not None:
            self._pending(segment)
            self._unsealed.append(segment)
        self._carry.absorb(batch)
        superseded = self._evict(evict)
        if superseded:  # the hot path counted these, but a newer record of each task remains
            dropped -= superseded
            buffer.note_dropped(-superseded)
        if dropped:
            self._carry.stats["dropped"] = self._carry.stats.get("dropped", 0) + dropped
            self._dropped_since_down += dropped
        if not self._carry and not self._sealed:
            self._confirmed()
            return True
        try:
            self._apply_sealed()
            if self._carry:
                self._carry.rollup_hours()
                chunks = self._chunker.seal(self._carry, time.time())
                if self._unsealed:  # before applying: replay must know what may be in Redis
                    Spool.mark(self._unsealed, chunks[0].seq, chunks[-1].seq, self.writer_id)
                    self._unsealed = []
                self._sealed.extend(chunks)
                self._carry = Batch()
                self._apply_sealed()
        except (redis.RedisError, OSError) as exc:
            self.failures += 1
            self._carry.hours.clear()  # derived again from the minutes when sealed
            buffer.carried(*self._bound())
            self._warn_down(exc)
            self._bound_spool()
            return False
        buffer.carried(0)
        self._confirmed()
        self.flushes += 1
        if self._down_since is not None:
            logger.warning(
                "warden: Redis reachable again after %.1fs; %d records dropped meanwhile "
                "(buffer bound %d)%s", time.time() - self._down_since, self._dropped_since_down,
                self.settings.buffer_size,
                f"; {self._spool_shed / 1048576:.1f} MB of spool deleted unwritten "
                f"(WARDEN_SPOOL_MAX_MB)" if self._spool_shed else "",
            )
            self._down_since = None
        self._dropped_since_down = 0
        self._spool_shed = 0
        return True

    def _confirmed(self) -> None:
        """Everything taken so far is in Redis: its spool segments can go."""
        if self._segments and not self._sealed and not self._carry:
            Spool.remove(self._segments)
            self._segments = []
            self._unsealed = []
            self._sizes.clear()
            self._spool_bytes = 0

    def pending_segments(self) -> list[Path]:
        return list(self._segments)

    def adopt(self, segments: list[Path]) -> None:
        """Carry a dead process's spool segments (replay): marked with this flusher's chunks
        when sealed, deleted once applied."""
        for path in segments:
            self._pending(path)
        self._unsealed += segments

    def _pending(self, path: Path) -> None:
        """One more segment waits for its changes to be written."""
        try:
            size = os.stat(path).st_size
        except OSError:
            size = 0
        self._segments.append(path)
        self._sizes[path] = size
        self._spool_bytes += size

    def _bound_spool(self) -> None:
        """The store is away: keep the pending segments within ``WARDEN_SPOOL_MAX_MB`` and
        :data:`MAX_SEGMENTS` (the newest always stays), deleting the oldest. Their changes
        are not lost while this process lives: what the buffer bound kept is in memory."""
        cap = self.settings.spool_max_mb * 1024 * 1024
        shed = 0
        while len(self._segments) > 1 and (self._spool_bytes > cap
                                           or len(self._segments) > MAX_SEGMENTS):
            path = self._segments.pop(0)
            size = self._sizes.pop(path, 0)
            self._spool_bytes -= size
            shed += size
            if path in self._unsealed:
                self._unsealed.remove(path)
            with contextlib.suppress(OSError):
                path.unlink()
        if shed:
            if not self._spool_shed:
                logger.warning(
                    "warden: Redis still unreachable; this process's spool reached its bound "
                    "(WARDEN_SPOOL_MAX_MB=%d, %d files): the oldest unwritten segments are "
                    "deleted from now on (what the buffer still holds is written when Redis "
                    "answers; a process killed before then loses it)",
                    self.settings.spool_max_mb, MAX_SEGMENTS)
            self._spool_shed += shed

    def _apply_sealed(self) -> None:
        """Apply sealed chunks in order; raises (and keeps the rest) when Redis is away."""
        while self._sealed:
            chunk = self._sealed[0]
            if self._writer is None:
                self._writer = self._writer_factory()
            try:
                self.written += self._writer.apply(chunk)
            except (redis.ResponseError, TypeError, ValueError) as exc:
                # A script error, or a value the chunk cannot be encoded with, would fail the
                # same way forever: the chunk goes, not the flusher.
                if isinstance(exc, redis.ResponseError) and refusal(exc):
                    raise  # READONLY after a failover, OOM: it passes, like an outage
                self.failures += 1
                lost = len(chunk.records) + chunk.outcomes
                self._carry.stats["dropped"] = self._carry.stats.get("dropped", 0) + lost
                self.buffer.note_dropped(lost)
                logger.error("warden: a chunk of %d records could not be written (%s: %s); "
                             "dropped", lost, type(exc).__name__, exc)
            self._sealed.popleft()

    def carries(self, task_id: str) -> bool:
        return (task_id in self._carry.tasks
                or any(e[0] == task_id for e in self._carry.sent)
                or any(record[1] == task_id for chunk in self._sealed
                       for record in chunk.records))

    def carried(self) -> int:
        return (sum(len(c.records) for c in self._sealed) + len(self._carry.tasks)
                + len(self._carry.sent))

    def _evict(self, count: int) -> int:
        """Drop the ``count`` oldest carried task records; returns how many of them were
        superseded (a newer record of the same task is still carried, so no task is lost).

        A task can be carried twice: in a sealed chunk that may already have been applied
        (never merged into again) and, newer, in the carried batch."""
        superseded = 0
        for chunk in self._sealed:
            if count <= 0:
                return superseded
            taken = min(count, len(chunk.records))
            superseded += sum(1 for record in chunk.records[:taken]
                              if record[1] in self._carry.tasks)
            del chunk.records[:taken]
            count -= taken
        tids = list(self._carry.tasks)[:count]
        for tid in tids:
            del self._carry.tasks[tid]
        del self._carry.sent[:count - len(tids)]
        return superseded

    def _bound(self) -> tuple[int, int]:
        """Keep what is carried within the bounds after a failed write; (carried, dropped)."""
        dropped = 0
        over = self.carried() - self.settings.buffer_size
        if over > 0:
            dropped += over - self._evict(over)
        dropped += _trim_oldest(self._carry.minutes, MAX_BUCKETS)  # metric buckets
        dropped += _trim_oldest(self._carry.errors, MAX_BUCKETS)  # error groups
        for group in self._carry.errors.values():
            over = len(group.minutes) - MAX_ERROR_MINUTES
            if over > 0:  # a long outage: a group keeps its last day of per-minute counts
                for minute in sorted(group.minutes)[:over]:
                    del group.minutes[minute]
                dropped += over
        if dropped:
            self._carry.stats["dropped"] = self._carry.stats.get("dropped", 0) + dropped
            self._dropped_since_down += dropped
        return self.carried(), dropped

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


def _trim_oldest(table: dict[Any, Any], limit: int) -> int:
    """Drop the oldest entries of an insertion-ordered dict past ``limit``; how many."""
    over = len(table) - limit
    for key in list(table)[:max(over, 0)]:
        del table[key]
    return max(over, 0)


__all__ = ["WARN_EVERY", "ChunkWriter", "Flusher"]
