"""A per-process append-only spool: buffered records survive a killed process.

Why: a worker process buffers records between flushes (``WARDEN_FLUSH_INTERVAL``); SIGKILL,
the OOM killer or a lost pool child took that buffer with it — finished tasks stayed STARTED,
counts came out short. Every change a handler makes to the buffer is also appended here (no
fsync: this survives the death of the process, not of the machine), under the buffer's lock, so
the file holds exactly what the buffer holds.

Files, in :func:`spool_dir` (mode 0700), per process (writer id ``W`` = its chunk writer id,
see :mod:`celery_warden.record.chunks`):

* ``W.lock`` — held with ``flock`` while the process lives; whoever can lock it knows ``W`` died.
* ``W.<n>.seg`` — segment ``n``: the entries of one flusher batch. The flusher switches the
  hot path to a new segment when it takes the buffer (:meth:`Spool.rotate`), appends a marker
  ``("M", first, last, W)`` when the batch is sealed into chunks ``first..last``, and deletes the
  segment once Redis confirmed every chunk. Replay (:mod:`celery_warden.record.replay`) compares
  the marker with the store's high-water mark of ``W``: chunks applied → nothing to redo, so
  counts are never added twice.
* ``W.dlq`` — DLQ entries that could not be written in time; delivered by the flusher thread
  once the store answers, or by the next worker start on the host.

Entry framing: a 4-byte little-endian length and a :mod:`marshal` payload (a tuple of plain
values), in one ``write()``; a torn tail (impossible for a killed process, possible for a full
disk) is ignored on read.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import marshal
import os
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger("celery_warden.spool")

_LEN = struct.Struct("<I")
#: Largest entry accepted when reading (a corrupt length must not allocate gigabytes).
MAX_ENTRY = 16 * 1024 * 1024


def spool_dir(setting: str, key_prefix: str) -> Path | None:
    """The spool directory for one key prefix (None when the spool is off)."""
    if setting.strip().lower() == "off":
        return None
    base = Path(setting) if setting.strip() else Path(tempfile.gettempdir()) / (
        f"celery-warden-{os.getuid()}")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key_prefix)[:100]
    return base / (safe or "_")


def ensure_dir(path: Path) -> bool:
    """Create the directory (0700); False if it is not ours (another user planted it)."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.stat()
    except OSError as exc:
        logger.warning("warden: spool directory %s unusable (%s); no spool", path, exc)
        return False
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        logger.warning("warden: spool directory %s is not private to this user; no spool", path)
        return False
    return True


def frame(entry: tuple[Any, ...]) -> bytes:
    data = marshal.dumps(entry)
    return _LEN.pack(len(data)) + data


def read_entries(path: Path) -> Iterator[tuple[Any, ...]]:
    """Entries of one file, in order; a torn or unreadable tail ends the file."""
    try:
        data = path.read_bytes()
    except OSError:
        return
    pos = 0
    while pos + _LEN.size <= len(data):
        (size,) = _LEN.unpack_from(data, pos)
        end = pos + _LEN.size + size
        if size > MAX_ENTRY or end > len(data):
            return
        try:
            entry = marshal.loads(data[pos + _LEN.size:end])
        except (ValueError, EOFError, TypeError):
            return
        if isinstance(entry, tuple) and entry:
            yield entry
        pos = end


class Spool:
    """The spool files of one process (one writer id)."""

    def __init__(self, directory: Path, writer_id: str) -> None:
        self.dir = directory
        self.writer = writer_id
        self._segment = 0
        self._fd: int | None = None
        self._written = False
        self._lock_fd: int | None = None
        self.lock_path = directory / f"{writer_id}.lock"
        self.dlq_path = directory / f"{writer_id}.dlq"
        #: DLQ entries being delivered (renamed from ``dlq_path``, so appends go to a new file).
        self.sending_path = directory / f"{writer_id}.dlq-sending"

    def open(self) -> bool:
        """Take this writer's lock (the "I am alive" sign); False if the spool is unusable."""
        if not ensure_dir(self.dir):
            return False
        for _ in range(3):
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                logger.warning("warden: cannot lock spool %s (%s); no spool", self.lock_path,
                               exc)
                return False
            # A replay that found the new file before our flock took it for a dead process's
            # and unlinked it: our lock would be on a file nobody sees, and our segments never
            # replayed. Lock the file that is there.
            with contextlib.suppress(FileNotFoundError):
                if os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino:
                    self._lock_fd = fd
                    return True
            os.close(fd)
        return False

    def segment_path(self, n: int) -> Path:
        return self.dir / f"{self.writer}.{n}.seg"

    # -- hot path (caller holds the buffer's lock) ------------------------------------------
    def append(self, entry: tuple[Any, ...]) -> None:
        fd = self._fd
        if fd is None:
            fd = self._fd = os.open(self.segment_path(self._segment),
                                    os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        os.write(fd, frame(entry))
        self._written = True

    # -- flusher side -----------------------------------------------------------------------
    def rotate(self) -> Path | None:
        """The current segment, closed (None if nothing was written); the hot path writes a
        new one from now on. Called under the buffer's lock when the flusher takes it."""
        if not self._written:
            return None
        path = self.segment_path(self._segment)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._segment += 1
        self._written = False
        return path

    def abandon(self) -> None:
        """Give the spool up (the process keeps its records in memory only): the current
        segment goes — every change in it is still buffered and will be written — so that no
        later replay applies it a second time. Segments the flusher already took stay its own
        (it deletes them once written)."""
        path = self.segment_path(self._segment) if self._written else None
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        self._written = False
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()

    @staticmethod
    def mark(segments: list[Path], first: int, last: int, writer: str) -> None:
        """Record that these segments' entries were sealed into chunks ``first..last`` of
        ``writer`` (the process's own, or a replaying one's)."""
        for path in segments:
            with contextlib.suppress(OSError):
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
                try:
                    os.write(fd, frame(("M", first, last, writer)))
                finally:
                    os.close(fd)

    @staticmethod
    def remove(segments: list[Path]) -> None:
        for path in segments:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    # -- DLQ entries that could not be written ---------------------------------------------
    def append_dlq(self, fields: dict[str, str]) -> None:
        fd = os.open(self.dlq_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, frame(("D", fields)))
        finally:
            os.close(fd)

    def dlq_bytes(self) -> int:
        """Bytes of DLQ entries waiting here (appended, and being delivered)."""
        total = 0
        for path in (self.dlq_path, self.sending_path):
            with contextlib.suppress(OSError):
                total += path.stat().st_size
        return total

    def close(self, *, remove: bool) -> None:
        """Release the files (``remove``: nothing is left to replay)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if remove and not self._written:
            with contextlib.suppress(FileNotFoundError):
                self.segment_path(self._segment).unlink()
        if self._lock_fd is not None:
            if remove and not self.leftovers():
                with contextlib.suppress(FileNotFoundError):
                    self.lock_path.unlink()
            os.close(self._lock_fd)
            self._lock_fd = None

    def forget(self) -> None:
        """In a forked child: drop the parent's descriptors without touching its files."""
        for fd in (self._fd, self._lock_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._lock_fd = None

    def leftovers(self) -> bool:
        """Whether anything is left to replay or deliver."""
        return bool(self.segments()) or self.dlq_path.exists() or self.sending_path.exists()

    def segments(self) -> list[Path]:
        return sorted(self.dir.glob(f"{self.writer}.*.seg"),
                      key=lambda p: int(p.name.split(".")[-2]))


__all__ = ["MAX_ENTRY", "Spool", "ensure_dir", "frame", "read_entries", "spool_dir"]
