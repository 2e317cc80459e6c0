"""StoreWriter + flush.lua against real Redis: ordering, clean-up of stale fields, buckets, TTLs."""

from __future__ import annotations

import json
import time

import pytest

from celery_warden.keys import Keys
from celery_warden.record.batch import Batch, BucketDelta, TaskDelta
from celery_warden.record.chunks import MAX_TASKS_PER_CALL
from celery_warden.record.order import delivery_seq
from celery_warden.record.store import StoreWriter


def task_batch(task_id: str, *, static=None, attempt=None, retries=0, rank=0,
               updated: float | None = None) -> Batch:
    attempt = dict(attempt or {})
    if rank:
        attempt["retries"] = str(retries)  # as the Recorder does
    delta = TaskDelta(static=dict(static or {}), attempt=attempt, seq=delivery_seq(retries),
                      rank=rank, updated=time.time() if updated is None else updated)
    return Batch(tasks={task_id: delta})


def test_record_fields_ttl_and_recent_index(settings, redis_client):
    """A task write stores static + attempt fields, (retries, rank), a TTL and a recent entry."""
    writer = StoreWriter(settings)
    keys = Keys(settings.key_prefix)
    updated = time.time()
    n = writer.write(task_batch("t1", static={"name": "fleet.add", "queue": "q"},
                                attempt={"state": "STARTED", "started": "1.5"}, rank=3,
                                updated=updated))
    assert n == 1
    assert redis_client.hgetall(keys.task("t1")) == {
        "name": "fleet.add", "queue": "q", "state": "STARTED", "started": "1.5",
        "retries": "0", "seq": "0", "rank": "3",
    }
    assert 0 < redis_client.ttl(keys.task("t1")) <= settings.task_ttl
    assert redis_client.zscore(keys.recent, "t1") == pytest.approx(updated, abs=1e-6)


def test_newer_rank_wins_in_any_order(settings, redis_client):
    """Within one attempt a lower rank (STARTED) arriving after SUCCESS does not move it back."""
    writer = StoreWriter(settings)
    key = Keys(settings.key_prefix).task("t")
    writer.write(task_batch("t", attempt={"state": "SUCCESS", "finished": "9.0"}, rank=5))
    writer.write(task_batch("t", static={"queue": "late-static"},
                            attempt={"state": "STARTED", "started": "8.0"}, rank=3))
    record = redis_client.hgetall(key)
    assert record["state"] == "SUCCESS"
    assert record["rank"] == "5"
    assert "started" not in record, "a stale attempt's fields are not written"
    assert record["queue"] == "late-static", "static fields are written whatever the order"


def test_equal_rank_later_write_wins(settings, redis_client):
    """Two writes with the same (retries, rank) both apply; the later one's values stand."""
    writer = StoreWriter(settings)
    key = Keys(settings.key_prefix).task("t")
    writer.write(task_batch("t", attempt={"state": "REVOKED", "reason": "revoked"}, rank=5))
    writer.write(task_batch("t", attempt={"state": "REVOKED", "reason": "expired"}, rank=5))
    assert redis_client.hget(key, "reason") == "expired"


def test_new_attempt_clears_stale_fields(settings, redis_client):
    """A higher retries count drops the previous attempt's finished/runtime/exc_* fields."""
    writer = StoreWriter(settings)
    key = Keys(settings.key_prefix).task("t")
    writer.write(task_batch("t", static={"name": "n"}, attempt={
        "state": "RETRY", "started": "1.0", "received": "0.5", "wait": "0.1", "finished": "2.0",
        "runtime": "1.0", "exc_type": "ValueError", "exc_msg": "boom"}, retries=0, rank=4))
    writer.write(task_batch("t", attempt={"state": "STARTED", "started": "5.0"}, retries=1,
                            rank=3))
    record = redis_client.hgetall(key)
    assert record["state"] == "STARTED"
    assert record["retries"] == "1"
    assert record["started"] == "5.0"
    for stale in ("finished", "runtime", "exc_type", "exc_msg", "received", "wait"):
        assert stale not in record, stale
    assert record["name"] == "n"


def test_new_delivery_clears_previous_reason(settings, redis_client):
    """A deferred delivery's reason does not linger on the next delivery's record."""
    writer = StoreWriter(settings)
    key = Keys(settings.key_prefix).task("t")
    first = TaskDelta(attempt={"state": "DEFERRED", "reason": "circuit open", "retries": "0",
                               "finished": "2.0"}, seq=delivery_seq(0, 0), rank=4)
    writer.write(Batch(tasks={"t": first}))
    second = TaskDelta(attempt={"state": "SUCCESS", "retries": "0", "finished": "9.0"},
                       seq=delivery_seq(0, 1), rank=5)
    writer.write(Batch(tasks={"t": second}))
    record = redis_client.hgetall(key)
    assert record["state"] == "SUCCESS"
    assert "reason" not in record


def test_older_attempt_arriving_late_is_ignored(settings, redis_client):
    """The previous attempt's RETRY written after the next attempt started changes nothing."""
    writer = StoreWriter(settings)
    key = Keys(settings.key_prefix).task("t")
    writer.write(task_batch("t", attempt={"state": "STARTED", "started": "5.0"}, retries=1,
                            rank=3))
    writer.write(task_batch("t", attempt={"state": "RETRY", "finished": "2.0",
                                          "exc_type": "ValueError"}, retries=0, rank=4))
    record = redis_client.hgetall(key)
    assert (record["state"], record["retries"], record["rank"]) == ("STARTED", "1", "3")
    assert "finished" not in record and "exc_type" not in record


def test_static_only_write_keeps_state(settings, redis_client):
    """A rank-0 write (e.g. a retry's re-publish) adds static fields without touching state."""
    writer = StoreWriter(settings)
    key = Keys(settings.key_prefix).task("t")
    writer.write(task_batch("t", attempt={"state": "RETRY"}, retries=0, rank=4))
    writer.write(task_batch("t", static={"sent": "3.0", "priority": "9"}))
    record = redis_client.hgetall(key)
    assert (record["state"], record["rank"], record["sent"], record["priority"]) == (
        "RETRY", "4", "3.0", "9")


def test_a_shorter_retry_history_arriving_late_does_not_replace_a_longer_one(settings,
                                                                             redis_client):
    """Each retry writes the whole history so far, from the process that ran that attempt: the
    list of attempt 0, flushed by one pool child after attempt 1's list by another, used to win
    (the spec self-test saw one entry after two retries). The list whose last entry has the
    higher attempt stays, whatever the order; a damaged stored value is replaced."""
    writer = StoreWriter(settings)
    key = Keys(settings.key_prefix).task("t")
    first = json.dumps([{"attempt": 0, "delay": 0.1}])
    both = json.dumps([{"attempt": 0, "delay": 0.1}, {"attempt": 1, "delay": 0.2}])
    writer.write(task_batch("t", static={"history": both}))
    writer.write(task_batch("t", static={"history": first}))  # late: attempt 0's process
    assert redis_client.hget(key, "history") == both
    writer.write(task_batch("t", attempt={"state": "SUCCESS"}, retries=2, rank=5,
                            static={"history": first}))  # with an applied attempt too
    assert redis_client.hget(key, "history") == both
    three = json.dumps([*json.loads(both), {"attempt": 2, "delay": 0.4}])
    writer.write(task_batch("t", static={"history": three}))
    assert redis_client.hget(key, "history") == three
    redis_client.hset(key, "history", "not json")
    writer.write(task_batch("t", static={"history": first}))
    assert redis_client.hget(key, "history") == first


def test_large_batches_are_split_but_all_written(settings, redis_client):
    """More tasks than one script call carries are all written (chunked by MAX_TASKS_PER_CALL)."""
    writer = StoreWriter(settings)
    total = 2 * MAX_TASKS_PER_CALL + 7
    now = time.time()
    batch = Batch(tasks={f"t{i}": TaskDelta(attempt={"state": "SENT"}, rank=1, updated=now)
                         for i in range(total)})
    assert writer.write(batch) == total
    keys = Keys(settings.key_prefix)
    assert redis_client.zcard(keys.recent) == total
    assert redis_client.hget(keys.task(f"t{total - 1}"), "state") == "SENT"


def test_recent_index_drops_entries_older_than_task_ttl(settings, redis_client):
    """Each write trims recent-index entries whose records have expired (older than the TTL)."""
    writer = StoreWriter(settings)
    keys = Keys(settings.key_prefix)
    now = time.time()
    writer.write(task_batch("old", attempt={"state": "SENT"}, rank=1,
                            updated=now - settings.task_ttl - 5), now=now - settings.task_ttl)
    assert redis_client.zscore(keys.recent, "old") is not None
    writer.write(task_batch("new", attempt={"state": "SENT"}, rank=1, updated=now), now=now)
    assert redis_client.zrange(keys.recent, 0, -1) == ["new"]


def test_buckets_add_counts_and_floats_and_keep_min_max(settings, redis_client):
    """Bucket counters and float sums add up across writes; dmin/dmax keep the extremes."""
    writer = StoreWriter(settings)
    keys = Keys(settings.key_prefix)
    minute = 1_700_000_040
    first = BucketDelta(counts={"success": 2, "done": 2, "h40": 2}, floats={"dsum": 0.25},
                        dmin=0.1, dmax=0.15)
    second = BucketDelta(counts={"success": 1, "failure": 1, "done": 2, "h40": 1, "h60": 1},
                         floats={"dsum": 2.5}, dmin=0.05, dmax=2.0)
    writer.write(Batch(minutes={("n", minute): first}))
    writer.write(Batch(minutes={("n", minute): second}))
    writer.write(Batch(minutes={("n", minute): BucketDelta(counts={"retry": 1})}))
    bucket = redis_client.hgetall(keys.minute_bucket("n", minute))
    assert {k: v for k, v in bucket.items() if k not in ("dsum", "dmin", "dmax")} == {
        "success": "3", "failure": "1", "retry": "1", "done": "4", "h40": "3", "h60": "1"}
    assert float(bucket["dsum"]) == pytest.approx(2.75)
    assert float(bucket["dmin"]) == 0.05 and float(bucket["dmax"]) == 2.0
    assert 0 < redis_client.ttl(keys.minute_bucket("n", minute)) <= settings.metrics_retention


def test_hour_buckets_get_rollup_retention(settings_factory, redis_client):
    """Hour roll-ups expire after WARDEN_ROLLUP_RETENTION, minute buckets after the metrics one."""
    s = settings_factory(WARDEN_METRICS_RETENTION=7200, WARDEN_ROLLUP_RETENTION=50_000)
    keys = Keys(s.key_prefix)
    b = BucketDelta(counts={"success": 1})
    StoreWriter(s).write(Batch(minutes={("n", 60): b}, hours={("n", 0): b}))
    assert 7000 < redis_client.ttl(keys.minute_bucket("n", 60)) <= 7200
    assert 49_000 < redis_client.ttl(keys.hour_bucket("n", 0)) <= 50_000


def test_indexes_workers_and_stats(settings, redis_client):
    """Names/queues indexes, worker heartbeats (hash + zset by last_seen) and stat counters."""
    writer = StoreWriter(settings)
    keys = Keys(settings.key_prefix)
    now = time.time()
    batch = Batch(names={"a", "b"}, queues={"q1"},
                  workers={"w1@h": {"state": "online", "last_seen": "1700000000.5"}},
                  stats={"dropped": 3, "rejected": 1})
    writer.write(batch, now=now)
    writer.write(Batch(stats={"dropped": 2}), now=now)
    assert set(redis_client.zrange(keys.names, 0, -1)) == {"a", "b"}
    assert redis_client.zscore(keys.names, "a") == pytest.approx(now, abs=1e-3)
    assert redis_client.zrange(keys.queues, 0, -1) == ["q1"]
    assert redis_client.hgetall(keys.worker("w1@h")) == {"state": "online",
                                                         "last_seen": "1700000000.5"}
    assert redis_client.zscore(keys.workers, "w1@h") == 1700000000.5
    assert 0 < redis_client.ttl(keys.worker("w1@h")) <= settings.metrics_retention
    assert redis_client.hgetall(keys.stats("recorder")) == {"dropped": "5", "rejected": "1"}


def test_empty_batch_is_falsy_and_writes_nothing(settings, redis_client):
    """An empty Batch is falsy; writing one creates no keys."""
    assert not Batch()
    assert Batch(names={"x"})
    StoreWriter(settings).write(Batch())
    assert list(redis_client.scan_iter(match=f"{settings.key_prefix}:*")) == []


def test_bucket_delta_merge():
    """BucketDelta.merge adds counters and sums and keeps the overall min and max."""
    a = BucketDelta(counts={"success": 1}, floats={"dsum": 1.0}, dmin=0.5, dmax=0.5)
    a.merge(BucketDelta(counts={"success": 2, "failure": 1}, floats={"dsum": 2.0}, dmin=0.1,
                        dmax=3.0))
    a.merge(BucketDelta(counts={"retry": 1}))
    assert a.counts == {"success": 3, "failure": 1, "retry": 1}
    assert a.floats == {"dsum": 3.0}
    assert (a.dmin, a.dmax) == (0.1, 3.0)


def test_lone_surrogates_in_a_record_are_written_escaped_not_fatal(settings, redis_client,
                                                                   recorders):
    """An exception message built from undecodable bytes (``surrogateescape``) or a routing
    key from a hostile message holds a lone surrogate, which UTF-8 cannot encode: it used to
    fail every flush of the process. It is written as its escape, and the rest as sent."""
    from celery_warden import CeleryMonitor
    from celery_warden.read.totals import read_totals
    from tests.unit.test_recorder import manual
    from tests.unit.test_totals import FakeRun

    r = manual(settings, recorders)  # no thread: the flushes below are explicit
    run = FakeRun("t.work", "celery@host-a", "q\udcff<script>", 0.1)
    r.begin("sur-1", run)
    r.end("sur-1", run, "t.work", {"state": "FAILURE", "exc_type": "OSError",  # type: ignore[arg-type]
                                   "exc_msg": "no such file: '\udcff[i]'"},
          5, "failure", time.time(), 0.01, 0.1)
    assert r.flush() is True
    status = CeleryMonitor(settings).get_task_status("sur-1")
    assert status["state"] == "FAILURE"
    assert redis_client.hget(Keys(settings.key_prefix).task("sur-1"), "exc_msg") == (
        "no such file: '\\udcff[i]'")
    got, _ = read_totals(redis_client, Keys(settings.key_prefix))
    assert {(c.event, c.value) for c in got} == {("received", 1), ("started", 1), ("failed", 1)}


def test_a_chunk_that_cannot_be_encoded_is_dropped_and_counted_the_rest_written(
        settings, redis_client, recorders, monkeypatch):
    """A value the wire format refuses would fail the same chunk forever: it is dropped (and
    counted), and the flusher goes on with the next records."""
    from celery_warden.record import store
    from tests.unit.test_recorder import manual

    r = manual(settings, recorders)  # no thread: the flushes below are explicit
    r.task("bad-1", static={"name": "t.a"}, attempt={"state": "SENT"}, rank=1)
    real = store._pack
    monkeypatch.setattr(store, "_pack", lambda value: (_ for _ in ()).throw(TypeError("nope")))
    assert r.flush() is True  # nothing left to retry: the chunk is gone, not carried
    assert r.flusher.failures == 1 and r.dropped == 1
    monkeypatch.setattr(store, "_pack", real)
    r.task("good-1", static={"name": "t.a"}, attempt={"state": "SENT"}, rank=1)
    assert r.flush() is True
    keys = Keys(settings.key_prefix)
    assert redis_client.exists(keys.task("good-1")) == 1
    assert redis_client.exists(keys.task("bad-1")) == 0
