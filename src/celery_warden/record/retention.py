"""The retention sweep: apply ``WARDEN_SUCCESS_RECORDS`` and the ``WARDEN_RECORDS_MAX_MB`` cap.

Why a sweep and not a decision at write time: a record is written in pieces (sent, received,
started, finished) by different processes, and whether it is a *plain* success (no retry, not
slow, not dead-lettered) is known only at the end; deciding in the flush would put a read of the
record on every task's write. Instead one Lua step (``lua/retention.lua``) reads the records
updated since a cursor (``P:retain:cursor``), a little behind real time (``GRACE`` seconds, so
late pieces have landed), and shortens, keeps or deletes each plain success. Several sweepers
(beat's maintenance task, ``warden serve``, every worker) may run at once: each step is atomic
and idempotent, and the cursor is shared, so they split the work instead of repeating it.

The cap is a record count derived from the memory budget and the measured size of a record
(``MEMORY USAGE`` of a sample plus its index entries), enforced at each sweep: the store may
overshoot by what arrives between two sweeps. Metric buckets are never touched: counts, rates
and percentiles stay exact whatever the policy.
"""

from __future__ import annotations

import time
from typing import cast

import redis

from celery_warden.keys import Keys
from celery_warden.scripts import script
from celery_warden.services import redis_client
from celery_warden.settings import WardenSettings

#: Seconds the sweep stays behind the newest update, so a record's late pieces have landed.
GRACE = 30.0
#: Records classified per Lua step (a step blocks Redis for ~1 ms per 1,000).
BATCH = 2000
#: Records the cap may evict in one step.
MAX_EVICT = 5000
#: Records whose size is sampled to turn the memory budget into a record count.
SIZE_SAMPLE = 16
_FIELDS = ("classified", "plain", "removed", "shortened", "forgotten", "evicted_success",
           "evicted_other")


def record_bytes(client: redis.Redis, keys: Keys) -> float | None:
    """Measured Redis bytes per task record, its hash plus its index entries; ``None`` when
    the store holds no record to measure."""
    ids = cast(list[str], client.zrandmember(keys.recent, SIZE_SAMPLE) or [])
    if not ids:
        return None
    pipe = client.pipeline(transaction=False)
    for task_id in ids:
        pipe.memory_usage(keys.task(task_id), samples=0)
    pipe.memory_usage(keys.recent)
    pipe.zcard(keys.recent)
    *sizes, index_bytes, count = pipe.execute()
    present = [int(s) for s in sizes if s]
    if not present:
        return None
    per_entry = int(index_bytes or 0) / max(int(count), 1)
    # A kept success also has an entry in P:retain:success, about the size of its P:recent one.
    return sum(present) / len(present) + 2 * per_entry


def max_records(settings: WardenSettings, client: redis.Redis, keys: Keys) -> int:
    """The record cap as a count (0 = no cap)."""
    if not settings.records_max_mb:
        return 0
    size = record_bytes(client, keys)
    if size is None:
        return 0
    return max(1, int(settings.records_max_mb * 1024 * 1024 / size))


def sweep_retention(settings: WardenSettings, client: redis.Redis | None = None,
                    now: float | None = None, max_steps: int = 50,
                    grace: float = GRACE) -> dict[str, int]:
    """Run retention steps until caught up (at most ``max_steps``); returns what each did,
    summed. ``grace``: seconds behind the newest update (a time-compressed benchmark scales
    it with its TTLs)."""
    keys = Keys(settings.key_prefix)
    own = client is None
    conn = redis_client(settings.redis_url) if client is None else client
    totals = dict.fromkeys(_FIELDS, 0)
    try:
        cap = max_records(settings, conn, keys)
        run = script(conn, "retention")
        for _ in range(max_steps):
            result = cast(list[int], run(
                keys=[keys.recent, keys.retain_success, keys.retain_cursor,
                      keys.stats("retention")],
                args=[repr(time.time() if now is None else now), grace,
                      settings.success_records, settings.success_sample_rate,
                      settings.success_ttl, settings.task_ttl, settings.slow_task_seconds,
                      BATCH, keys.task(""), cap, MAX_EVICT]))
            for name, value in zip(_FIELDS, result, strict=False):
                totals[name] += int(value)
            if not result[-1]:
                break
    finally:
        if own:
            conn.close()
    totals["cap"] = cap
    return totals


__all__ = ["GRACE", "max_records", "record_bytes", "sweep_retention"]
