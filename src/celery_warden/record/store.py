"""Write side of the Redis store: one script call (``lua/flush.lua``) applies one chunk.

Why a Lua script instead of a plain pipeline: task records are written by up to three processes
(publisher, worker main, pool child) whose flushes can arrive in any order; the script keeps the
newest attempt's state without a read-modify-write round trip from Python, skips a chunk it has
already applied (see :mod:`celery_warden.record.chunks`), and costs one network round trip
however many tasks the chunk carries.
"""

from __future__ import annotations

import time

import msgpack
import redis

from celery_warden import scripts
from celery_warden.record.batch import Batch
from celery_warden.record.chunks import Chunk, Chunker
from celery_warden.services import redis_client
from celery_warden.settings import WardenSettings

#: What the script answers for a chunk it had already applied.
ALREADY_APPLIED = -1


def _pack(value: object) -> bytes:
    """MessagePack for the flush script. A lone surrogate (an exception message built from
    undecodable bytes with ``surrogateescape``, a routing key from a hostile message) cannot be
    UTF-8: it is written as its ``\\udcff`` escape instead of failing the whole flush."""
    packed: bytes = msgpack.packb(value, unicode_errors="backslashreplace")
    return packed


class StoreWriter:
    """Applies chunks to Redis. Used only by the flusher thread, never on the hot path."""

    def __init__(self, settings: WardenSettings, client: redis.Redis | None = None) -> None:
        self.settings = settings
        self.client = client or redis_client(settings.redis_url)
        self._script = scripts.script(self.client, "flush")
        self._chunker: Chunker | None = None

    def apply(self, chunk: Chunk) -> int:
        """Apply one chunk; the task records written (0 when it had been applied before).
        Raises ``redis.RedisError`` / ``OSError`` when Redis cannot be reached."""
        chunk.attempted = True
        records = _pack(chunk.records) if chunk.records else b""
        # MessagePack, not JSON, for the payload too: 9.5 against 34 µs for a one-task flush's
        # (bench/README.md), and cmsgpack decodes it faster than cjson in Redis.
        done = int(self._script(args=[_pack(chunk.payload), repr(chunk.now), records]))
        return 0 if done == ALREADY_APPLIED else done

    def write(self, batch: Batch, now: float | None = None) -> int:
        """Seal and apply a whole batch at once (for callers without a flusher)."""
        if not batch:
            return 0
        if self._chunker is None:
            self._chunker = Chunker(self.settings)
        now = time.time() if now is None else now
        return sum(self.apply(chunk) for chunk in self._chunker.seal(batch, now))


__all__ = ["ALREADY_APPLIED", "StoreWriter"]
