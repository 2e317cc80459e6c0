"""warden_deferrals_total never decreases and counts each deferral once: completed minutes are
folded into a cumulative hash by a compare-and-set script, so expiring minute buckets and a
second replica folding the same minutes change nothing."""

from __future__ import annotations

import time

import redis

from celery_warden import scripts
from celery_warden.keys import Keys, minute_of
from celery_warden.read.deferral_totals import (
    FIRST_FOLD,
    MAX_MINUTES,
    SETTLE,
    deferral_totals,
    fold,
)
from celery_warden.record.buffer import RecordBuffer
from celery_warden.record.store import StoreWriter
from celery_warden.settings import WardenSettings


def _record(settings: WardenSettings, client: redis.Redis, ts: float,
            outcomes: dict[str, int]) -> None:
    """Count deferrals the way the guards do (the recorder's buffer), written by the store."""
    buf = RecordBuffer(settings)
    for outcome, n in outcomes.items():
        for _ in range(n):
            buf.observe("svc.charge", ts, outcome)
    batch = buf.take()[0]
    StoreWriter(settings, client).write(batch, now=ts)


def test_fold_counts_settled_minutes_once_and_survives_bucket_expiry(
        settings: WardenSettings, redis_client: redis.Redis) -> None:
    """Deferrals of settled minutes are counted by reason; deleting the minute buckets (their
    expiry) and folding again leaves the counter where it was."""
    keys = Keys(settings.key_prefix)
    t0 = minute_of(1_900_000_000.0) + 5.0
    _record(settings, redis_client, t0, {"deferred_circuit": 3, "deferred_rate": 2})
    _record(settings, redis_client, t0 + 60, {"deferred_duplicate": 1})
    redis_client.hset(keys.deferral_totals, "_through", str(minute_of(t0) - 60))

    assert not fold(redis_client, keys, now=t0 + 30)  # nothing has settled yet
    assert fold(redis_client, keys, now=t0 + 60 + SETTLE + 61)
    raw = redis_client.hgetall(keys.deferral_totals)
    assert (raw["circuit_open"], raw["rate_limited"], raw["duplicate_running"]) == ("3", "2", "1")

    for minute in (minute_of(t0), minute_of(t0) + 60):
        redis_client.delete(keys.minute_bucket("svc.charge", minute))
    assert not fold(redis_client, keys, now=t0 + 60 + SETTLE + 61)
    fold(redis_client, keys, now=t0 + 600)
    raw = redis_client.hgetall(keys.deferral_totals)
    assert (raw["circuit_open"], raw["rate_limited"], raw["duplicate_running"]) == ("3", "2", "1")


def test_a_stale_fold_adds_nothing(settings: WardenSettings, redis_client: redis.Redis) -> None:
    """Two replicas that read the same watermark: the first fold adds, the second is refused,
    so the same minutes are never counted twice."""
    keys = Keys(settings.key_prefix)
    fold_script = scripts.script(redis_client, "fold_totals")
    args = ["", 1_900_000_020, "circuit_open", 4]
    assert fold_script(keys=[keys.deferral_totals], args=args) == 1
    assert fold_script(keys=[keys.deferral_totals], args=args) == 0
    assert redis_client.hget(keys.deferral_totals, "circuit_open") == "4"


def test_every_reason_is_reported_from_zero(settings: WardenSettings,
                                            redis_client: redis.Redis) -> None:
    """A fresh store answers every reason with 0 (Prometheus sees the series from the start),
    and the first fold starts FIRST_FOLD seconds back, not at the epoch."""
    keys = Keys(settings.key_prefix)
    totals = deferral_totals(redis_client, keys)
    assert totals == {"circuit_open": 0, "rate_limited": 0, "duplicate_running": 0,
                      "store_unreachable": 0}
    through = int(redis_client.hget(keys.deferral_totals, "_through"))
    assert through > minute_of(time.time() - FIRST_FOLD)


def test_a_long_pause_is_caught_up_over_several_scrapes(settings: WardenSettings,
                                                         redis_client: redis.Redis) -> None:
    """After an hour without a scrape, one fold covers MAX_MINUTES minutes (a bounded number
    of reads), the next ones the rest, and every deferral is counted once."""
    keys = Keys(settings.key_prefix)
    now = minute_of(1_900_000_000.0) + 30.0
    start = minute_of(now - 3600)
    for k in range(0, 55, 5):  # one deferral every 5 minutes over the hour
        _record(settings, redis_client, start + 60 * k + 10, {"deferred_rate": 1})
    redis_client.hset(keys.deferral_totals, "_through", str(start - 60))
    assert fold(redis_client, keys, now=now)
    through = int(redis_client.hget(keys.deferral_totals, "_through"))
    assert through == start - 60 + 60 * MAX_MINUTES
    while fold(redis_client, keys, now=now):
        pass
    assert redis_client.hget(keys.deferral_totals, "rate_limited") == "11"
