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

from celery_warden.keys import INDEXED_STATES, Keys
from celery_warden.record.id_rescore import rescore_id_buckets
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
#: Seconds before a kept success expires that it leaves the search indexes (at most; a quarter
#: of ``WARDEN_SUCCESS_TTL`` when that is shorter): its hash must still say which name index
#: holds it, and sweeps run every minute.
AHEAD = 300.0
#: Ids the age trim (``lua/index_trim.lua``) takes from ``P:recent`` per sweep.
TRIM_BATCH = 10_000
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
    bucket = keys.task_id_bucket(ids[0][:4])  # a small one: its encoding is what most cost
    pipe.memory_usage(bucket, samples=0)
    pipe.zcard(bucket)
    *sizes, index_bytes, count, bucket_bytes, bucket_count = pipe.execute()
    present = [int(s) for s in sizes if s]
    if not present:
        return None
    per_entry = int(index_bytes or 0) / max(int(count), 1)
    per_id = int(bucket_bytes or 0) / max(int(bucket_count or 0), 1)
    # A kept success also has an entry in P:retain:success and one in its name's index, each
    # about the size of its P:recent one (a failure's state index entry is not counted).
    return sum(present) / len(present) + 3 * per_entry + per_id


def max_records(settings: WardenSettings, client: redis.Redis, keys: Keys) -> int:
    """The record cap as a count (0 = no cap)."""
    if not settings.records_max_mb:
        return 0
    size = record_bytes(client, keys)
    if size is None:
        return 0
    return max(1, int(settings.records_max_mb * 1024 * 1024 / size))


def trim_indexes(client: redis.Redis, keys: Keys, cutoff: float) -> tuple[int, int]:
    """Trim every task index by age (``lua/index_trim.lua``): ids updated before ``cutoff``
    leave ``P:recent`` (with their id bucket) and the name and state indexes. Returns (ids
    from ``P:recent``, name and state index entries)."""
    out = cast(list[int], script(client, "index_trim")(
        keys=[keys.recent, keys.names],
        args=[repr(cutoff), keys.task_name_index(""), keys.task_state_index(""),
              keys.task_id_bucket(""), TRIM_BATCH, *INDEXED_STATES]))
    return int(out[0]), int(out[1])


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
        stamp = time.time() if now is None else now
        trim_indexes(conn, keys, stamp - settings.task_ttl)
        rescore_id_buckets(conn, keys)  # once per store: score-0 entries of an older version
        ahead = min(AHEAD, settings.success_ttl / 4)
        run = script(conn, "retention")
        for _ in range(max_steps):
            result = cast(list[int], run(
                keys=[keys.recent, keys.retain_success, keys.retain_cursor,
                      keys.stats("retention")],
                args=[repr(stamp), grace,
                      settings.success_records, settings.success_sample_rate,
                      settings.success_ttl, settings.task_ttl, settings.slow_task_seconds,
                      BATCH, keys.task(""), cap, MAX_EVICT, ahead, keys.task_name_index(""),
                      keys.task_state_index(""), keys.task_id_bucket("")]))
            for name, value in zip(_FIELDS, result, strict=False):
                totals[name] += int(value)
            if not result[-1]:
                break
    finally:
        if own:
            conn.close()
    totals["cap"] = cap
    return totals


__all__ = ["AHEAD", "GRACE", "max_records", "record_bytes", "sweep_retention", "trim_indexes"]
