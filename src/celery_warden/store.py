"""Write side of the Redis store: one script call applies a whole flusher batch.

Why a Lua script instead of a plain pipeline: task records are written by up to three processes
(publisher, worker main, pool child) whose flushes can arrive in any order; the script keeps the
newest attempt's state without a read-modify-write round trip from Python, and the whole batch
costs one network round trip however many tasks it carries.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import msgpack
import redis

from celery_warden.keys import Keys
from celery_warden.redaction import Redactor
from celery_warden.settings import WardenSettings

#: Socket timeouts for Warden's own Redis connections: short, so a dead Redis costs the
#: flusher thread (never a task) at most this long per attempt.
SOCKET_TIMEOUT = 2.0
#: Records per script call. Measured ~15-20 µs of Redis time per record (bench/overhead.py), so a
#: call blocks the (often shared) Redis for at most ~3-4 ms.
MAX_TASKS_PER_CALL = 200


def redis_client(url: str, *, decode: bool = True) -> redis.Redis:
    """A Redis client with the short timeouts Warden uses everywhere."""
    return redis.Redis.from_url(
        url,
        decode_responses=decode,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=SOCKET_TIMEOUT,
        health_check_interval=30,
    )


class Preview:
    """Task args or kwargs, turned into a redacted, size-bounded JSON preview at flush time."""

    __slots__ = ("empty", "value")

    def __init__(self, value: Any, empty: str = "[]") -> None:
        self.value = value
        self.empty = empty


@dataclass(slots=True)
class TaskDelta:
    """Buffered change to one task record.

    ``static`` fields (name, queue, sent) are always written; ``attempt`` fields (state, times,
    error, retries) only when ``(seq, rank)`` is not older than what the store holds. ``seq``
    orders deliveries of one task id (see :func:`celery_warden.recorder.delivery_seq`).
    """

    static: dict[str, Any] = field(default_factory=dict)
    attempt: dict[str, Any] = field(default_factory=dict)
    seq: int = 0
    rank: int = 0
    updated: float = 0.0
    #: A task that ran in this process: its start fields are expanded at flush time (see
    #: ``celery_warden.recorder.Running``), under the explicit ``static``/``attempt`` values.
    run: Any = None

    @property
    def retries(self) -> int:
        """Retries of the delivery this delta belongs to (derived from ``seq``)."""
        from celery_warden.recorder import MAX_DEFERS

        return self.seq // (MAX_DEFERS + 1)


@dataclass(slots=True)
class BucketDelta:
    """Buffered increments to one metric bucket (per task name and minute or hour)."""

    counts: dict[str, int] = field(default_factory=dict)
    floats: dict[str, float] = field(default_factory=dict)
    dmin: float | None = None
    dmax: float | None = None

    def merge(self, other: BucketDelta) -> None:
        for k, v in other.counts.items():
            self.counts[k] = self.counts.get(k, 0) + v
        for k, f in other.floats.items():
            self.floats[k] = self.floats.get(k, 0.0) + f
        if other.dmin is not None:
            self.dmin = other.dmin if self.dmin is None else min(self.dmin, other.dmin)
        if other.dmax is not None:
            self.dmax = other.dmax if self.dmax is None else max(self.dmax, other.dmax)


@dataclass(slots=True)
class ErrorDelta:
    """Buffered occurrences of one error group (see :mod:`celery_warden.error_groups`)."""

    info: dict[str, str]
    count: int = 0
    first: float = 0.0
    last: float = 0.0
    names: dict[str, int] = field(default_factory=dict)
    task_ids: list[str] = field(default_factory=list)
    minutes: dict[int, int] = field(default_factory=dict)

    def merge(self, other: ErrorDelta) -> None:
        self.count += other.count
        self.first = min(self.first, other.first) if self.first else other.first
        self.last = max(self.last, other.last)
        for n, c in other.names.items():
            self.names[n] = self.names.get(n, 0) + c
        self.task_ids = (self.task_ids + other.task_ids)[-RECENT_IDS:]
        for m, c in other.minutes.items():
            self.minutes[m] = self.minutes.get(m, 0) + c


#: Recent task ids buffered per error group between flushes.
RECENT_IDS = 20


@dataclass(slots=True)
class Batch:
    """Everything one flush writes."""

    tasks: dict[str, TaskDelta] = field(default_factory=dict)
    minutes: dict[tuple[str, int], BucketDelta] = field(default_factory=dict)
    hours: dict[tuple[str, int], BucketDelta] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)
    queues: set[str] = field(default_factory=set)
    workers: dict[str, dict[str, str]] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    errors: dict[str, ErrorDelta] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(
            self.tasks or self.minutes or self.workers or self.stats or self.names or self.queues
            or self.errors
        )


def _lua_source() -> str:
    return resources.files("celery_warden").joinpath("lua/flush.lua").read_text()


class StoreWriter:
    """Applies batches to Redis. Used only by the flusher thread, never on the hot path."""

    def __init__(self, settings: WardenSettings, client: redis.Redis | None = None) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.client = client or redis_client(settings.redis_url)
        self._script = self.client.register_script(_lua_source())
        self.redactor = Redactor(settings.redact_keys)

    def write(self, batch: Batch, now: float | None = None) -> int:
        """Write a batch; raises ``redis.RedisError`` if Redis is unreachable."""
        now = time.time() if now is None else now
        tasks = list(batch.tasks.items())
        first = True
        written = 0
        for start in range(0, max(len(tasks), 1), MAX_TASKS_PER_CALL):
            chunk = tasks[start : start + MAX_TASKS_PER_CALL]
            payload = self._payload(batch, chunk, include_rest=first)
            records = msgpack.packb([self._flat(tid, d) for tid, d in chunk]) if chunk else b""
            written += int(self._script(args=[json.dumps(payload), repr(now), records]))
            first = False
        return written

    def _flat(self, task_id: str, d: TaskDelta) -> list[Any]:
        """One task record as a flat array for the script, values formatted here (on the
        flusher thread): key, id, update time, seq, rank, #static pairs, static k/v, attempt
        k/v."""
        fmt = self._format
        static, attempt = d.static, d.attempt
        if d.run is not None:
            run_static, run_attempt, _, _ = d.run.start_fields()
            static = {**run_static, **static}
            attempt = {**run_attempt, **attempt} if d.rank else attempt
        out: list[Any] = [self.keys.task(task_id), task_id, repr(d.updated), d.seq, d.rank, 0]
        for k, v in static.items():
            if v is not None:
                out += (k, fmt(v))
        out[5] = (len(out) - 6) // 2
        for k, v in attempt.items():
            if v is not None:
                out += (k, fmt(v))
        return out

    def _format(self, value: Any) -> str:
        """Stored form of a record value. Handlers hand over raw values so that formatting
        (and redacting argument previews) happens here, off the task's path."""
        if isinstance(value, str):
            return value
        if isinstance(value, float):
            return f"{value:.6f}"
        if isinstance(value, bool | int):
            return str(int(value))
        if isinstance(value, Preview):
            return self.redactor.preview(value.value) if value.value else value.empty
        return json.dumps(value, default=str)

    def _payload(
        self, batch: Batch, tasks: list[tuple[str, TaskDelta]], *, include_rest: bool
    ) -> dict[str, Any]:
        k = self.keys
        s = self.settings
        payload: dict[str, Any] = {
            "task_ttl": s.task_ttl,
            "recent": k.recent,
            "workers": [],
            "worker_ttl": s.metrics_retention,
            "buckets": [],
            "index": [],
            "stats": [],
            "errors": [],
            "errors_key": k.error_groups,
        }
        # cjson encodes an empty dict as an empty array; both iterate as empty in Lua.
        if not include_rest:
            return payload
        for (name, minute), b in batch.minutes.items():
            payload["buckets"].append(_bucket(k.minute_bucket(name, minute),
                                              s.metrics_retention, b))
        for (name, hour), b in batch.hours.items():
            payload["buckets"].append(_bucket(k.hour_bucket(name, hour), s.rollup_retention, b))
        if batch.names:
            payload["index"].append([k.names, sorted(batch.names)])
        if batch.queues:
            payload["index"].append([k.queues, sorted(batch.queues)])
        payload["workers"] = [[k.worker(h), f, h] for h, f in batch.workers.items()]
        payload["workers_key"] = k.workers
        payload["stats"] = [[k.stats("recorder"), n, v] for n, v in batch.stats.items()]
        payload["errors"] = [
            [k.error_group(fp), k.error_group_tasks(fp), fp, e.count, repr(e.first), repr(e.last),
             e.info or {}, e.names or {}, e.task_ids,  # LPUSH in order: newest ends first
             [[k.error_group_minute(fp, m), c] for m, c in e.minutes.items()],
             s.metrics_retention]
            for fp, e in batch.errors.items()
        ]
        return payload


def _bucket(key: str, ttl: int, b: BucketDelta) -> list[Any]:
    return [
        key,
        ttl,
        b.counts or {},
        {f: repr(v) for f, v in b.floats.items()} or {},
        "" if b.dmin is None else repr(b.dmin),
        "" if b.dmax is None else repr(b.dmax),
    ]


__all__ = ["Batch", "BucketDelta", "ErrorDelta", "StoreWriter", "TaskDelta", "redis_client"]
