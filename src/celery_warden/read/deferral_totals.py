"""Cumulative deferrals by reason (``warden_deferrals_total``), folded from minute buckets.

The guards count a deferral in the task name's minute bucket (``deferred_circuit``,
``deferred_rate``, ``deferred_duplicate``, ``deferred_store``: see
:mod:`celery_warden.fleet.guards`), which the flusher also folds into the fleet-wide minute
bucket (``P:fm:<minute>``, read here: one hash per minute whatever the number of task names),
and minute buckets expire — a counter summed from them would
fall, which Prometheus reads as a reset. So at each scrape the completed minutes since the last
fold are summed once into ``P:totals:deferrals`` (no TTL), by a compare-and-set script
(``lua/fold_totals.lua``): replicas folding the same minutes add them once, and the counter
never decreases.

Trade-offs, stated: a minute is folded :data:`SETTLE` seconds after it ends (a flush lands within
``WARDEN_FLUSH_INTERVAL``; a recorder that could not reach Redis for longer flushes its carry
late, and those late counts stay in the per-minute views but not in this counter). The first
fold starts :data:`FIRST_FOLD` seconds back; a catch-up after a long pause folds at most
:data:`MAX_MINUTES` minutes per scrape.
"""

from __future__ import annotations

import time
from typing import cast

import redis

from celery_warden import scripts
from celery_warden.keys import Keys, minute_of

#: Minute-bucket fields a deferral is counted in -> the ``reason`` label.
REASONS = {"deferred_circuit": "circuit_open", "deferred_rate": "rate_limited",
           "deferred_duplicate": "duplicate_running", "deferred_store": "store_unreachable"}
#: Seconds after a minute ends before it is folded (late flushes land before that).
SETTLE = 120
#: Where the very first fold starts (seconds back).
FIRST_FOLD = 3600
#: Minutes folded per call at most (a long pause is caught up over several scrapes).
MAX_MINUTES = 15
THROUGH = "_through"


def fold(client: redis.Redis, keys: Keys, now: float | None = None) -> bool:
    """Fold the completed minutes not folded yet; True when this call added them."""
    now = time.time() if now is None else now
    last = minute_of(now - SETTLE) - 60  # the newest minute that has settled
    raw = client.hget(keys.deferral_totals, THROUGH)
    through = int(cast(str, raw)) if raw else minute_of(now - FIRST_FOLD)
    if last <= through:
        return False
    end = min(last, through + 60 * MAX_MINUTES)
    minutes = range(through + 60, end + 60, 60)
    fields = list(REASONS)
    pipe = client.pipeline(transaction=False)
    for minute in minutes:
        pipe.hmget(keys.fleet_minute(minute), fields)
    sums = dict.fromkeys(fields, 0)
    for row in pipe.execute():
        for field, value in zip(fields, row, strict=True):
            if value:
                sums[field] += int(value)
    args: list[str | int] = [cast(str, raw) or "", end]
    for field, n in sums.items():
        args += [REASONS[field], n]
    return bool(scripts.script(client, "fold_totals")(keys=[keys.deferral_totals], args=args))


def deferral_totals(client: redis.Redis, keys: Keys) -> dict[str, int]:
    """Deferrals by reason since the first fold (folding what has settled first)."""
    fold(client, keys)
    raw = cast(dict[str, str], client.hgetall(keys.deferral_totals))
    return {reason: int(raw.get(reason, 0) or 0) for reason in REASONS.values()}


__all__ = ["REASONS", "deferral_totals", "fold"]
