"""Replay of the spools of dead processes (see :mod:`celery_warden.record.spool`).

Run by a worker's main process when it starts (in a thread: a store that does not answer never
delays the start), for every spool on the host whose lock nobody holds — its process died.

Exactly once: a segment's markers ``("M", first, last, writer)`` say which chunks its entries
were sealed into, and the store keeps each writer's highest applied chunk
(``P:flushed:<writer>``). Counters and histograms travel in a batch's first chunk, records in
all of them, so for each segment:

* some marker with ``applied >= last`` → everything is in Redis: nothing to do;
* some marker with ``applied >= first`` → the counts are in, maybe not every record: records
  only (a record write is idempotent, see :mod:`celery_warden.record.order`);
* otherwise → everything again.

The replay itself goes through a flusher that marks the segments with *its* chunks before
applying them, and deletes them once applied, so a replay that dies half-way is replayed
exactly once too.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import redis

from celery_warden.keys import Keys
from celery_warden.record.running import TaskBuffer
from celery_warden.record.spool import Spool, frame, read_entries

logger = logging.getLogger("celery_warden.spool")

DLQSink = Callable[[dict[str, str]], None]


class Replayer(Protocol):
    """A recorder without a thread, whose flusher will carry the dead segments."""

    def flush(self) -> bool: ...


class ReplayRun:
    """A finished task rebuilt from a spool entry (the :class:`~.running.Running` protocol)."""

    __slots__ = ("_facts", "counts_received", "defers", "flushed", "name", "queue", "retries",
                 "wait", "worker")

    def __init__(self, name: str, facts: tuple[Any, ...], counted: bool) -> None:
        self._facts = facts
        self.name = name
        self.queue, self.worker = str(facts[0] or ""), str(facts[1] or "")
        self.retries, self.defers, self.wait = int(facts[5]), int(facts[6]), facts[7]
        self.flushed = counted
        # Facts of 8 values were spooled by a version whose main process counted the receipt.
        self.counts_received = len(facts) > 8 and bool(facts[8])

    def start_fields(self) -> tuple[dict[str, Any], dict[str, Any], int, int]:
        queue, worker, pid, started, received, retries, defers, wait = self._facts[:8]
        static = {"name": self.name, "queue": queue or None}
        attempt = {"state": "STARTED", "started": started, "worker": worker, "pid": pid,
                   "received": received, "wait": wait, "retries": retries}
        return static, attempt, retries, defers

    def facts(self) -> tuple[Any, ...]:
        return self._facts


def apply_entry(buf: TaskBuffer, entry: tuple[Any, ...], counters: bool) -> None:
    """Apply one spooled change to a buffer again (``counters``: also its counts)."""
    kind = entry[0]
    if kind == "T":
        _, tid, static, attempt, retries, rank, defers, total = entry
        buf.task(tid, static=static, attempt=attempt, retries=retries, rank=rank, defers=defers,
                 total=tuple(total) if counters and total else None)
    elif kind == "E":
        _, tid, name, final, rank, outcome, finished, runtime, wait, facts, counted = entry
        run = ReplayRun(name, facts, counted)
        if counters:
            buf.end(tid, run, name, final, rank, outcome, finished, runtime, wait)
        else:
            static, attempt, retries, defers = run.start_fields()
            final["retries"] = retries
            buf.task(tid, static=static, attempt={**attempt, **final}, retries=retries,
                     rank=rank, defers=defers)
    elif not counters:
        return
    elif kind == "O":
        buf.observe(*entry[1:])
    elif kind == "C":
        buf.total(tuple(entry[1]), entry[2])
    elif kind == "X":
        buf.error(*entry[1:])
    elif kind == "S":
        buf.stat(*entry[1:])
    elif kind == "R":
        buf.count_start(*entry[1:])


@dataclass
class ReplayReport:
    writers: int = 0
    entries: int = 0
    dlq_entries: int = 0
    kept: int = 0  # writers whose spool could not be replayed yet (store down)
    busy: bool = False  # another look on this host was running: nothing done


def _plan(segment: Path, applied: Callable[[str], int]) -> tuple[list[tuple[Any, ...]], bool, bool]:
    """(entries, counters needed, anything needed) for one segment."""
    entries, counters, needed = [], True, True
    for entry in read_entries(segment):
        if entry[0] != "M":
            entries.append(entry)
            continue
        first, last = int(entry[1]), int(entry[2])
        writer = str(entry[3]) if len(entry) > 3 else segment.name.split(".")[0]
        done = applied(writer)
        if done >= last:
            needed = False
        if done >= first:
            counters = False
    return entries, counters, needed


def replay_writer(directory: Path, writer: str, client: redis.Redis, keys: Keys,
                  make: Callable[[list[Path]], tuple[TaskBuffer, Replayer]],
                  dlq_sink: DLQSink | None, report: ReplayReport) -> None:
    """Replay one dead writer's files (the caller holds its lock)."""
    cache: dict[str, int] = {}

    def applied(w: str) -> int:
        if w not in cache:
            cache[w] = int(client.get(keys.flush_writer(w)) or 0)
        return cache[w]

    spool = Spool(directory, writer)
    segments = spool.segments()
    if segments:
        buf, flusher = make(segments)
        for seg in segments:
            entries, counters, needed = _plan(seg, applied)
            if needed:
                for entry in entries:
                    apply_entry(buf, entry, counters)
                    report.entries += 1
        if not flusher.flush():
            report.kept += 1
            return
    for path in (spool.sending_path, spool.dlq_path):
        if path.exists() and not deliver_dlq(path, dlq_sink, report):
            report.kept += 1
            return
    report.writers += 1


def deliver_dlq(path: Path, sink: DLQSink | None, report: ReplayReport | None = None) -> bool:
    """Hand a DLQ spool file's entries to the DLQ; True when the file is gone (all in). What
    could not be delivered stays, without what was."""
    if sink is None:
        return False
    entries = [e for e in read_entries(path) if e[0] == "D"]
    done = 0
    for entry in entries:
        try:
            sink(dict(entry[1]))
        except Exception as exc:
            logger.warning("warden: spooled DLQ entry not delivered yet (%s: %s)",
                           type(exc).__name__, exc)
            break
        done += 1
    if report is not None:
        report.dlq_entries += done
    if done == len(entries):
        path.unlink(missing_ok=True)
        return True
    if done:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(b"".join(frame(e) for e in entries[done:]))
        os.replace(tmp, path)
    return False


def replay_dead(directory: Path, connect: Callable[[], redis.Redis], keys: Keys,
                make: Callable[[list[Path]], tuple[TaskBuffer, Replayer]],
                dlq_sink: DLQSink | None, own: str | None = None,
                after: Callable[[ReplayReport], None] | None = None) -> ReplayReport:
    """Replay every spool in ``directory`` whose process is gone. ``connect`` is called only
    when there is one (the worker's reaper looks every second, and usually finds none).

    One look at a time per host (a ``flock`` on the spool directory; a look finding it held
    returns at once with ``busy``), so once a look ends every spool that was dead when it began
    is in the store or still on disk (``kept``); ``after`` runs at that point, still guarded."""
    report = ReplayReport()
    client: redis.Redis | None = None
    guard = _guard(directory)
    if guard is None:
        report.busy = True
        return report
    try:
        for lock in sorted(directory.glob("*.lock")):
            writer = lock.name[: -len(".lock")]
            if writer == own:
                continue
            fd = _lock_if_dead(lock)
            if fd is None:
                continue  # alive (or another worker is replaying it right now)
            try:
                if client is None:
                    client = connect()
                replay_writer(directory, writer, client, keys, make, dlq_sink, report)
                if not Spool(directory, writer).leftovers():
                    with contextlib.suppress(FileNotFoundError):
                        lock.unlink()
            except (redis.RedisError, OSError) as exc:
                logger.warning("warden: spool of %s not replayed yet (%s: %s)", writer,
                               type(exc).__name__, exc)
                report.kept += 1
            finally:
                _HELD.discard(fd)
                os.close(fd)
        if after is not None:
            after(report)
    finally:
        _HELD.discard(guard)
        os.close(guard)
        if client is not None:
            client.close()
    if report.entries or report.dlq_entries:
        logger.warning("warden: replayed the spools of %d dead processes: %d records, %d DLQ "
                       "entries (%d spools kept for later)", report.writers, report.entries,
                       report.dlq_entries, report.kept)
    return report


#: Lock descriptors a replay holds right now. A pool child forked meanwhile inherits them —
#: with the ``flock`` on them, which would then live as long as that child, and a spool the
#: replay had to keep (store down) could not be replayed until it died — so they are closed in
#: every forked child (closing the child's copy leaves this process's lock alone).
_HELD: set[int] = set()


def _close_held() -> None:
    for fd in list(_HELD):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_close_held)


def _try_lock(path: Path, flags: int) -> int | None:
    """``path`` opened with ``flags`` and locked exclusively without waiting, its descriptor
    held until closed (and closed in forked children); None when it cannot be opened or
    someone else holds the lock."""
    try:
        fd = os.open(path, flags | os.O_CLOEXEC)
    except OSError:
        return None
    _HELD.add(fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        _HELD.discard(fd)
        os.close(fd)
        return None
    return fd


def _guard(directory: Path) -> int | None:
    """The host-wide replay guard, taken (None: another look is running): a lock on the
    directory itself (flock works on a directory), so no file is left behind."""
    return _try_lock(directory, os.O_RDONLY | os.O_DIRECTORY)


def _lock_if_dead(lock: Path) -> int | None:
    """The lock file's descriptor, locked, if its process is gone; None if it lives."""
    return _try_lock(lock, os.O_RDWR)


__all__ = ["DLQSink", "ReplayReport", "ReplayRun", "apply_entry", "deliver_dlq", "replay_dead",
           "replay_writer"]
