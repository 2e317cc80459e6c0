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
The spool segments of what is not written yet stay on disk, bounded too during a long outage
(:mod:`.pending`).
"""

from __future__ import annotations

import logging
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
from celery_warden.record.pending import PendingSegments
from celery_warden.record.running import TaskBuffer
from celery_warden.services import refusal

logger = logging.getLogger("celery_warden.recorder")

#: Seconds between repeated "Redis unreachable" warnings from one process.
WARN_EVERY = 30.0
#: Per-minute counts one carried error group keeps while Redis is down (a day).
MAX_ERROR_MINUTES = 1440


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
        self._busy_since: float | None = None  # when the flush under way began
        self._dropped_since_down = 0
        #: Spool segments whose changes are not confirmed yet.
        self.segments = PendingSegments(self.settings)

    def away(self, after: float) -> bool:
        """Whether Redis looks away: the last flush could not reach it, or the one under way
        has waited on it for more than ``after`` seconds (a store that stopped answering)."""
        since = self._busy_since
        return self._down_since is not None or (
            since is not None and time.monotonic() - since > after)

    @property
    def writer_id(self) -> str:
        """This process's chunk writer id (its spool files carry it too)."""
        return self._chunker.writer_id

    def flush(self) -> bool:
        """Write everything buffered; False if Redis could not be reached (kept for later)."""
        with self._lock:
            self._busy_since = time.monotonic()
            try:
                return self._flush()
            finally:
                self._busy_since = None

    def _flush(self) -> bool:
        buffer = self.buffer
        buffer.started_records()
        batch, dropped, evict, segment, gone = buffer.take()
        if segment is not None:
            self.segments.add(segment)
        self._carry.absorb(batch)
        superseded = self._evict(evict, gone)
        if superseded:  # the hot path counted these, but each task is kept or counted already
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
                self.segments.mark(chunks[0].seq, chunks[-1].seq, self.writer_id)
                self._sealed.extend(chunks)
                self._carry = Batch()
                self._apply_sealed()
        except (redis.RedisError, OSError) as exc:
            self.failures += 1
            self._carry.hours.clear()  # derived again from the minutes when sealed
            buffer.carried(*self._bound())
            self._warn_down(exc)
            self.segments.bound()
            return False
        buffer.carried(0)
        self._confirmed()
        self.flushes += 1
        if self._down_since is not None:
            logger.warning(
                "warden: Redis reachable again after %.1fs; %d records dropped meanwhile "
                "(buffer bound %d)%s", time.time() - self._down_since, self._dropped_since_down,
                self.settings.buffer_size, self.segments.recovered(),
            )
            self._down_since = None
        self._dropped_since_down = 0
        return True

    def _confirmed(self) -> None:
        """Everything taken so far is in Redis: its spool segments can go."""
        if self.segments.paths and not self._sealed and not self._carry:
            self.segments.confirmed()

    def pending_segments(self) -> list[Path]:
        return list(self.segments.paths)

    def adopt(self, segments: list[Path]) -> None:
        """Carry a dead process's spool segments (replay): marked with this flusher's chunks
        when sealed, deleted once applied."""
        for path in segments:
            self.segments.add(path)

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

    def _evict(self, count: int, gone: set[str] | frozenset[str] = frozenset()) -> int:
        """Drop the ``count`` oldest carried task records; returns how many of them were
        superseded: a newer record of the same task is still carried (no task is lost), or
        the hot path dropped the newer one and counted the task then (``gone``).

        A task can be carried twice: in a sealed chunk that may already have been applied
        (never merged into again) and, newer, in the carried batch; and a task whose STARTED
        record a failed flush carries ends with its final record in the buffer, where the
        bound may drop it."""
        superseded = 0
        for chunk in self._sealed:
            if count <= 0:
                return superseded
            taken = min(count, len(chunk.records))
            superseded += sum(1 for record in chunk.records[:taken]
                              if record[1] in self._carry.tasks or record[1] in gone)
            del chunk.records[:taken]
            count -= taken
        tids = list(self._carry.tasks)[:count]
        superseded += sum(1 for tid in tids if tid in gone)
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
