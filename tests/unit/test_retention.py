"""The retention sweep (record/retention.py): failures, retries, slow and running tasks keep
their records in full; plain successes follow WARDEN_SUCCESS_RECORDS; the cap evicts plain
successes first; metric buckets are untouched."""

from __future__ import annotations

import time
import uuid

from celery_warden.keys import Keys
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.record.order import RANK_FINAL, RANK_STARTED
from celery_warden.record.recorder import Recorder
from celery_warden.record.retention import GRACE, record_bytes, sweep_retention


def write(settings, made, tasks: list[tuple[str, str, int, float]]) -> None:
    """Records (id, state, retries, runtime) written through the real recorder and flush."""
    r = Recorder(settings)
    r.stop()
    made.append(r)
    for task_id, state, retries, runtime in tasks:
        rank = RANK_STARTED if state == "STARTED" else RANK_FINAL
        attempt = {"state": state, "runtime": runtime} if state != "STARTED" else {
            "state": state}
        r.task(task_id, static={"name": "t.work", "queue": "default"}, attempt=attempt,
               retries=retries, rank=rank)
        if state in ("SUCCESS", "FAILURE"):
            r.observe("t.work", time.time(), "success" if state == "SUCCESS" else "failure",
                      runtime, None)
    assert r.flush()


def ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def later() -> float:
    return time.time() + GRACE + 1


def test_failures_retries_slow_and_running_records_are_kept_in_full(settings_factory,
                                                                   recorders, redis_client):
    settings = settings_factory(WARDEN_SUCCESS_RECORDS="none", WARDEN_SLOW_TASK_SECONDS="5")
    plain, failed, retried, slow, running = (ids(20), ids(3), ids(3), ids(3), ids(3))
    write(settings, recorders,
          [(i, "SUCCESS", 0, 0.01) for i in plain] + [(i, "FAILURE", 0, 0.01) for i in failed]
          + [(i, "SUCCESS", 2, 0.01) for i in retried] + [(i, "SUCCESS", 0, 9.0) for i in slow]
          + [(i, "STARTED", 0, 0) for i in running])
    done = sweep_retention(settings, now=later())
    assert done["removed"] == 20 and done["plain"] == 20
    keys = Keys(settings.key_prefix)
    for task_id in plain:
        assert not redis_client.exists(keys.task(task_id))
        assert redis_client.zscore(keys.recent, task_id) is None
    for task_id in failed + retried + slow + running:
        assert redis_client.exists(keys.task(task_id)), task_id
        assert redis_client.ttl(keys.task(task_id)) > settings.task_ttl - 60
    monitor = CeleryMonitor(settings)
    assert monitor.get_task_status(plain[0])["known"] is False
    # The aggregates still count every success, kept or not.
    stats = monitor.get_performance_stats("t.work")
    assert (stats["success"], stats["failure"]) == (20 + 3 + 3, 3)


def test_recent_policy_shortens_plain_successes_and_keeps_a_deterministic_sample(
        settings_factory, recorders, redis_client):
    settings = settings_factory(WARDEN_SUCCESS_RECORDS="recent", WARDEN_SUCCESS_TTL="120",
                                WARDEN_SUCCESS_SAMPLE_RATE="0.25")
    plain = ids(400)
    write(settings, recorders, [(i, "SUCCESS", 0, 0.01) for i in plain])
    done = sweep_retention(settings, now=later())
    keys = Keys(settings.key_prefix)
    ttls = [redis_client.ttl(keys.task(i)) for i in plain]
    short = sum(1 for t in ttls if 0 < t <= 120)
    long_ = sum(1 for t in ttls if t > 120)
    assert short == done["shortened"] and short + long_ == 400
    assert 60 <= long_ <= 140  # a 25 % sample of 400 (binomial, far from the bounds)
    # Idempotent: a second sweep over the same records (another replica) changes nothing.
    redis_client.delete(keys.retain_cursor)
    again = sweep_retention(settings, now=later())
    assert again["classified"] == 400 and again["shortened"] == 0
    assert [redis_client.ttl(keys.task(i)) > 120 for i in plain] == [t > 120 for t in ttls]
    # Deterministic: another store given the same ids keeps the same sample.
    other = settings_factory(WARDEN_SUCCESS_RECORDS="recent", WARDEN_SUCCESS_TTL="120",
                             WARDEN_SUCCESS_SAMPLE_RATE="0.25")
    write(other, recorders, [(i, "SUCCESS", 0, 0.01) for i in plain])
    sweep_retention(other, now=later())
    okeys = Keys(other.key_prefix)
    assert [redis_client.ttl(okeys.task(i)) > 120 for i in plain] == [t > 120 for t in ttls]


def test_expired_successes_leave_the_indexes(settings_factory, recorders, redis_client):
    settings = settings_factory(WARDEN_SUCCESS_RECORDS="recent", WARDEN_SUCCESS_TTL="60",
                                WARDEN_SUCCESS_SAMPLE_RATE="0")
    plain = ids(50)
    write(settings, recorders, [(i, "SUCCESS", 0, 0.01) for i in plain])
    sweep_retention(settings, now=later())
    keys = Keys(settings.key_prefix)
    assert redis_client.zcard(keys.retain_success) == 50
    done = sweep_retention(settings, now=later() + 61)
    assert done["forgotten"] == 50
    assert redis_client.zcard(keys.retain_success) == 0
    assert redis_client.zcard(keys.recent) == 0


def test_the_cap_evicts_plain_successes_before_anything_else(settings_factory, recorders,
                                                            redis_client):
    settings = settings_factory(WARDEN_SUCCESS_RECORDS="all", WARDEN_RECORDS_MAX_MB="1")
    keys = Keys(settings.key_prefix)
    failed = ids(100)
    write(settings, recorders, [(i, "FAILURE", 0, 0.01) for i in failed])
    plain = ids(6000)
    write(settings, recorders, [(i, "SUCCESS", 0, 0.01) for i in plain])
    size = record_bytes(redis_client, keys)
    assert size is not None and 150 < size < 2000
    cap = int(1024 * 1024 / size)
    assert cap < 6100, "the test needs more records than the cap"
    done = sweep_retention(settings, now=later())
    assert done["cap"] > 0 and done["evicted_success"] > 0 and done["evicted_other"] == 0
    assert redis_client.zcard(keys.recent) <= done["cap"]
    assert all(redis_client.exists(keys.task(i)) for i in failed)
    survivors = sum(1 for i in plain if redis_client.exists(keys.task(i)))
    assert survivors == 6000 - done["evicted_success"]


def test_the_cap_evicts_the_oldest_finished_records_when_no_success_is_left(
        settings_factory, recorders, redis_client):
    settings = settings_factory(WARDEN_RECORDS_MAX_MB="1")
    keys = Keys(settings.key_prefix)
    failed = ids(8000)
    write(settings, recorders, [(i, "FAILURE", 0, 0.01) for i in failed])
    done = sweep_retention(settings, now=later())
    assert done["evicted_other"] > 0
    assert redis_client.zcard(keys.recent) <= done["cap"]


def test_a_sweep_without_records_does_nothing(settings):
    assert sweep_retention(settings)["classified"] == 0
