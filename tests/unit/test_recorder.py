"""Recorder against real Redis: coalescing, ordering across processes, buckets, outages, fork."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import pytest
import redis

from celery_warden.embedded import EmbeddedRedis, free_port
from celery_warden.keys import HOUR, Keys, hour_of, minute_of
from celery_warden.record.chunks import Chunk
from celery_warden.record.histogram import bucket_index
from celery_warden.record.order import RANK_FINAL, RANK_RETRY, RANK_SENT, RANK_STARTED
from celery_warden.record.recorder import Recorder
from celery_warden.record.store import StoreWriter
from celery_warden.services import redis_client
from celery_warden.settings import WardenSettings
from tests.conftest import make_settings


def manual(settings: WardenSettings, made: list[Recorder], **kw: Any) -> Recorder:
    """A recorder without its background flusher: it buffers until the test calls flush().

    A stopped recorder keeps accepting records but starts no thread (until restart()), which
    makes every flush in these tests explicit and deterministic.
    """
    r = Recorder(settings, **kw)
    r.stop()
    made.append(r)
    return r


class Switch:
    """Routes the recorder's writes to a real StoreWriter the test chooses (dead, then live)."""

    def __init__(self, target: StoreWriter) -> None:
        self.target = target

    def apply(self, chunk: Chunk) -> int:
        return self.target.apply(chunk)


def dead_writer(settings: WardenSettings) -> StoreWriter:
    """A real StoreWriter whose Redis address has nothing listening."""
    return StoreWriter(settings, client=redis_client(f"redis://127.0.0.1:{free_port()}/0"))


def test_state_changes_coalesce_into_one_record(settings, redis_client, recorders):
    """SENT, STARTED and SUCCESS of one task in one interval become a single record write."""
    r = manual(settings, recorders)
    r.task("t1", static={"name": "fleet.add", "queue": "default", "sent": "1.0"},
           attempt={"state": "SENT"}, rank=RANK_SENT)
    r.task("t1", static={"name": "fleet.add"}, attempt={"state": "STARTED", "started": "2.0"},
           rank=RANK_STARTED)
    r.task("t1", attempt={"state": "SUCCESS", "finished": "3.0", "runtime": "1.0"},
           rank=RANK_FINAL)
    assert r.stats()["buffered"] == 1
    assert r.flush() is True
    assert r.stats()["written"] == 1 and r.stats()["flushes"] == 1
    record = redis_client.hgetall(Keys(settings.key_prefix).task("t1"))
    assert record["state"] == "SUCCESS"
    assert (record["sent"], record["started"], record["finished"]) == ("1.0", "2.0", "3.0")
    assert record["retries"] == "0"
    assert r.stats()["buffered"] == 0


def test_lower_rank_after_higher_in_buffer_is_ignored(settings, redis_client, recorders):
    """Inside one buffer a late STARTED (lower rank) does not overwrite SUCCESS."""
    r = manual(settings, recorders)
    r.task("t", attempt={"state": "SUCCESS"}, rank=RANK_FINAL)
    r.task("t", attempt={"state": "STARTED", "started": "5.0"}, rank=RANK_STARTED)
    r.flush()
    record = redis_client.hgetall(Keys(settings.key_prefix).task("t"))
    assert record["state"] == "SUCCESS"
    assert "started" not in record


@pytest.mark.parametrize("order", ["newest-first", "oldest-first"])
def test_out_of_order_flushes_across_processes_keep_newest_attempt(
        settings, redis_client, recorders, order):
    """Two processes' writes for one task, flushed in either order, leave the newest attempt."""
    publisher_side = manual(settings, recorders)  # e.g. the pool child that ran attempt 0
    retry_side = manual(settings, recorders)  # the pool child that runs attempt 1
    publisher_side.task("t", static={"name": "fleet.flaky"}, attempt={
        "state": "RETRY", "started": "1.0", "finished": "2.0", "runtime": "1.0",
        "exc_type": "IOError", "exc_msg": "try again"}, retries=0, rank=RANK_RETRY)
    retry_side.task("t", attempt={"state": "STARTED", "started": "3.0", "worker": "w2"},
                    retries=1, rank=RANK_STARTED)
    flushes = [retry_side, publisher_side] if order == "newest-first" else [
        publisher_side, retry_side]
    for rec in flushes:
        assert rec.flush() is True
    record = redis_client.hgetall(Keys(settings.key_prefix).task("t"))
    assert record["state"] == "STARTED"
    assert record["retries"] == "1"
    assert record["started"] == "3.0" and record["worker"] == "w2"
    for stale in ("finished", "runtime", "exc_type", "exc_msg"):
        assert stale not in record, stale
    assert record["name"] == "fleet.flaky"


def test_later_retry_in_same_buffer_clears_previous_attempt(settings, redis_client, recorders):
    """Buffered attempt fields of retry 0 are discarded once retry 1 is recorded."""
    r = manual(settings, recorders)
    r.task("t", attempt={"state": "RETRY", "finished": "2.0", "exc_type": "E"}, retries=0,
           rank=RANK_RETRY)
    r.task("t", attempt={"state": "SUCCESS", "finished": "4.0"}, retries=1, rank=RANK_FINAL)
    r.task("t", attempt={"state": "RETRY", "exc_msg": "late"}, retries=0, rank=RANK_RETRY)
    r.flush()
    record = redis_client.hgetall(Keys(settings.key_prefix).task("t"))
    assert (record["state"], record["retries"], record["finished"]) == ("SUCCESS", "1", "4.0")
    assert "exc_type" not in record and "exc_msg" not in record


def test_records_get_a_ttl(settings_factory, redis_client, recorders):
    """Every task record expires after at most WARDEN_TASK_TTL seconds."""
    s = settings_factory(WARDEN_TASK_TTL=120)
    r = manual(s, recorders)
    for i in range(3):
        r.task(f"t{i}", attempt={"state": "SENT"}, rank=RANK_SENT)
    r.flush()
    for i in range(3):
        assert 0 < redis_client.ttl(Keys(s.key_prefix).task(f"t{i}")) <= 120


def test_metric_buckets_are_exact_for_minutes_and_hours(settings, redis_client, recorders):
    """Counts, done, dsum, dmin/dmax, duration and queue-wait histograms and wait fields are
    exact in minute and hour."""
    r = manual(settings, recorders)
    hour = hour_of(time.time()) - 2 * HOUR
    m1, m2 = hour + 60, hour + 25 * 60  # two minutes of the same hour
    durations_m1 = [0.010, 0.020, 0.500]
    for d in durations_m1:
        r.observe("fleet.add", m1 + 5, "success", d, wait=0.1, queue="q-default")
    r.observe("fleet.add", m1 + 50, "failure", 1.0)
    r.observe("fleet.add", m2 + 1, "retry", 0.25, wait=0.3)
    r.observe("fleet.add", m2 + 2, "revoked")  # no duration: counted, not timed
    r.observe("fleet.other", m2 + 3, "success", 2.0, queue="q-low")
    assert r.flush() is True
    keys = Keys(settings.key_prefix)

    def hist(values: list[float], slot: str = "h") -> dict[str, str]:
        out: dict[str, int] = {}
        for v in values:
            out[f"{slot}{bucket_index(v)}"] = out.get(f"{slot}{bucket_index(v)}", 0) + 1
        return {k: str(v) for k, v in out.items()}

    b1 = redis_client.hgetall(keys.minute_bucket("fleet.add", minute_of(m1)))
    assert {k: v for k, v in b1.items() if not k.startswith(("dsum", "wsum", "dmin", "dmax"))} \
        == {"success": "3", "failure": "1", "done": "4", "wn": "3",
            **hist([*durations_m1, 1.0]), **hist([0.1] * 3, "w")}
    assert float(b1["dsum"]) == pytest.approx(1.53)
    assert float(b1["wsum"]) == pytest.approx(0.3)
    assert (float(b1["dmin"]), float(b1["dmax"])) == (0.010, 1.0)

    b2 = redis_client.hgetall(keys.minute_bucket("fleet.add", m2))
    assert b2["retry"] == "1" and b2["revoked"] == "1" and b2["done"] == "1"

    h = redis_client.hgetall(keys.hour_bucket("fleet.add", hour))
    assert {k: v for k, v in h.items() if not k.startswith(("dsum", "wsum", "dmin", "dmax"))} \
        == {"success": "3", "failure": "1", "retry": "1", "revoked": "1", "done": "5",
            "wn": "4", **hist([*durations_m1, 1.0, 0.25]), **hist([0.1] * 3 + [0.3], "w")}
    assert float(h["dsum"]) == pytest.approx(1.78)
    assert float(h["wsum"]) == pytest.approx(0.6)
    assert (float(h["dmin"]), float(h["dmax"])) == (0.010, 1.0)
    assert redis_client.hget(keys.hour_bucket("fleet.other", hour), "success") == "1"
    assert set(redis_client.zrange(keys.names, 0, -1)) == {"fleet.add", "fleet.other"}
    assert set(redis_client.zrange(keys.queues, 0, -1)) == {"q-default", "q-low"}


def test_buckets_from_several_flushes_and_recorders_add_up(settings, redis_client, recorders):
    """Two processes observing the same minute, flushed separately, sum in the store."""
    a, b = manual(settings, recorders), manual(settings, recorders)
    ts = minute_of(time.time()) - 600 + 10
    for _ in range(7):
        a.observe("n", ts, "success", 0.1)
    a.flush()
    for _ in range(5):
        a.observe("n", ts, "success", 0.1)
        b.observe("n", ts, "failure", 0.2)
    b.flush()
    a.flush()
    keys = Keys(settings.key_prefix)
    bucket = redis_client.hgetall(keys.minute_bucket("n", minute_of(ts)))
    assert (bucket["success"], bucket["failure"], bucket["done"]) == ("12", "5", "17")
    hour = redis_client.hgetall(keys.hour_bucket("n", hour_of(ts)))
    assert (hour["success"], hour["failure"], hour["done"]) == ("12", "5", "17")


def test_heartbeat_and_stats_are_written(settings, redis_client, recorders):
    """A heartbeat writes the worker hash and its last_seen score; stats add up."""
    r = manual(settings, recorders)
    r.heartbeat("w1@host", {"state": "online", "last_seen": "1700000000.250", "active": "1"})
    r.heartbeat("w1@host", {"state": "online", "last_seen": "1700000010.500", "active": "2"})
    r.stat("rejected")
    r.stat("rejected", 2)
    assert r.flush() is True
    keys = Keys(settings.key_prefix)
    assert redis_client.hgetall(keys.worker("w1@host")) == {
        "state": "online", "last_seen": "1700000010.500", "active": "2"}
    assert redis_client.zscore(keys.workers, "w1@host") == 1700000010.5
    assert redis_client.hget(keys.stats("recorder"), "rejected") == "3"


def test_buffer_is_bounded_while_redis_is_down_and_drops_are_reported(
        settings_factory, redis_client, recorders, caplog):
    """Redis down: flush fails, the buffer keeps at most buffer_size newest records, the drops
    are counted, and once Redis is back the survivors and the drop count are written."""
    s = settings_factory(WARDEN_BUFFER_SIZE=100)
    switch = Switch(dead_writer(s))
    r = manual(s, recorders, writer_factory=lambda: switch)
    for i in range(150):
        r.task(f"t{i}", attempt={"state": "SENT"}, rank=RANK_SENT)
    with caplog.at_level(logging.WARNING, logger="celery_warden.recorder"):
        assert r.flush() is False
        for i in range(150, 180):
            r.task(f"t{i}", attempt={"state": "SENT"}, rank=RANK_SENT)
        assert r.flush() is False
    stats = r.stats()
    assert stats["buffered"] <= s.buffer_size
    assert stats["dropped"] == 80
    assert stats["flush_failures"] == 2
    warnings = [rec for rec in caplog.records if "cannot write to Redis" in rec.getMessage()]
    assert len(warnings) == 1, "the outage is reported once, not per flush"

    switch.target = StoreWriter(s)
    with caplog.at_level(logging.WARNING, logger="celery_warden.recorder"):
        assert r.flush() is True
    assert any("reachable again" in rec.getMessage() for rec in caplog.records)
    keys = Keys(s.key_prefix)
    assert redis_client.hget(keys.stats("recorder"), "dropped") == "80"
    assert redis_client.zcard(keys.recent) == 100
    assert redis_client.exists(keys.task("t79")) == 0, "the oldest records were dropped"
    assert redis_client.hget(keys.task("t80"), "state") == "SENT"
    assert redis_client.hget(keys.task("t179"), "state") == "SENT"
    assert r.stats()["buffered"] == 0
    assert r.flush() is True
    assert redis_client.hget(keys.stats("recorder"), "dropped") == "80", "reported once"


def test_bound_covers_new_and_carried_records_together(settings_factory, redis_client,
                                                      recorders):
    """While a failed batch is carried, new records still fit in ONE buffer_size in total: the
    oldest carried records make room first, and every drop is counted."""
    s = settings_factory(WARDEN_BUFFER_SIZE=100)
    switch = Switch(dead_writer(s))
    r = manual(s, recorders, writer_factory=lambda: switch)
    for i in range(100):
        r.task(f"old{i}", attempt={"state": "SENT"}, rank=RANK_SENT)
    assert r.flush() is False  # 100 carried
    for i in range(60):  # no flush in between: the hot path alone must keep the bound
        r.task(f"new{i}", attempt={"state": "SENT"}, rank=RANK_SENT)
        assert r.stats()["buffered"] <= s.buffer_size
    assert r.stats()["dropped"] == 60
    switch.target = StoreWriter(s)
    assert r.flush() is True
    keys = Keys(s.key_prefix)
    assert redis_client.zcard(keys.recent) == 100
    assert redis_client.exists(keys.task("old59")) == 0, "oldest carried records dropped"
    assert redis_client.exists(keys.task("old60")) == 1
    assert redis_client.exists(keys.task("new59")) == 1
    assert redis_client.hget(keys.stats("recorder"), "dropped") == "60"


def test_records_survive_until_redis_comes_back_on_the_same_address(tmp_path, recorders):
    """Buffered records (and metric buckets) are written once a Redis appears at the address."""
    port = free_port()
    s = make_settings(f"redis://127.0.0.1:{port}/0")
    r = manual(s, recorders)
    ts = time.time()
    r.task("t1", attempt={"state": "SUCCESS"}, rank=RANK_FINAL)
    r.observe("n", ts, "success", 0.5)
    assert r.flush() is False
    with EmbeddedRedis(tmp_path, port=port, appendonly=False) as server:
        r.task("t2", attempt={"state": "SENT"}, rank=RANK_SENT)
        assert r.flush() is True
        client = redis.Redis.from_url(server.url, decode_responses=True)
        keys = Keys(s.key_prefix)
        assert client.hget(keys.task("t1"), "state") == "SUCCESS"
        assert client.hget(keys.task("t2"), "state") == "SENT"
        assert client.hget(keys.minute_bucket("n", minute_of(ts)), "success") == "1"
        assert client.hget(keys.hour_bucket("n", hour_of(ts)), "success") == "1"
        client.close()


def test_concurrent_flushes_do_not_lose_carried_records(settings, redis_client, recorders):
    """Two flushes at once during an outage (flusher thread + a shutdown flush) keep both
    batches buffered; nothing is silently lost when one failed batch replaces the other."""
    switch = Switch(dead_writer(settings))
    entered, release = threading.Event(), threading.Event()

    class Gate:
        calls = 0

        def apply(self, chunk: Chunk) -> int:
            Gate.calls += 1
            if Gate.calls == 1:
                entered.set()
                release.wait(10)
            return switch.apply(chunk)

    r = manual(settings, recorders, writer_factory=Gate)
    r.task("t1", attempt={"state": "SENT"}, rank=RANK_SENT)
    first = threading.Thread(target=r.flush)
    first.start()
    assert entered.wait(5)
    r.task("t2", attempt={"state": "SENT"}, rank=RANK_SENT)
    second = threading.Thread(target=r.flush)
    second.start()
    second.join(0.5)  # without serialisation it finishes here, while the first is still out
    release.set()
    first.join(10)
    second.join(10)
    assert r.stats()["buffered"] == 2
    switch.target = StoreWriter(settings)
    assert r.flush() is True
    keys = Keys(settings.key_prefix)
    assert redis_client.exists(keys.task("t1"), keys.task("t2")) == 2


def test_stop_flushes_what_is_buffered(settings, redis_client, recorders):
    """stop() ends the flusher thread and writes everything still in the buffer."""
    r = Recorder(settings)
    recorders.append(r)
    ts = time.time()
    r.task("t1", attempt={"state": "STARTED"}, rank=RANK_STARTED)
    r.observe("n", ts, "success", 0.2)
    thread = r._thread
    r.stop()
    assert thread is not None and not thread.is_alive()
    keys = Keys(settings.key_prefix)
    assert redis_client.hget(keys.task("t1"), "state") == "STARTED"
    assert redis_client.hget(keys.minute_bucket("n", minute_of(ts)), "success") == "1"


def test_background_flusher_writes_without_explicit_flush(settings, redis_client, recorders):
    """With the flusher thread running, a record reaches Redis within a few flush intervals."""
    from tests.support import wait_for

    r = Recorder(settings)
    recorders.append(r)
    r.task("t1", attempt={"state": "SENT"}, rank=RANK_SENT)
    key = Keys(settings.key_prefix).task("t1")
    wait_for(lambda: redis_client.exists(key), timeout=10, message="background flush")
    assert r.stats()["flushes"] >= 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_does_not_write_parents_buffer(settings, redis_client, recorders):
    """A forked child starts with an empty buffer: it writes only its own records; the parent's
    buffered records are written once, by the parent."""
    r = manual(settings, recorders)
    ts = time.time()
    r.task("parent-1", attempt={"state": "SENT"}, rank=RANK_SENT)
    r.task("parent-2", attempt={"state": "SENT"}, rank=RANK_SENT)
    r.observe("n", ts, "success", 0.1)
    r.observe("n", ts, "success", 0.1)
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            r.restart()
            r.task("child-1", attempt={"state": "SUCCESS"}, rank=RANK_FINAL)
            r.observe("n", ts, "failure", 0.3)
            code = 0 if r.stats()["buffered"] == 1 and r.flush() else 2
            r.stop()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    keys = Keys(settings.key_prefix)
    bucket = keys.minute_bucket("n", minute_of(ts))
    assert redis_client.hget(keys.task("child-1"), "state") == "SUCCESS"
    assert redis_client.exists(keys.task("parent-1"), keys.task("parent-2")) == 0
    assert redis_client.hget(bucket, "success") is None
    assert redis_client.hget(bucket, "failure") == "1"
    assert r.stats()["buffered"] == 2
    assert r.flush() is True
    assert redis_client.exists(keys.task("parent-1"), keys.task("parent-2")) == 2
    assert (redis_client.hget(bucket, "success"), redis_client.hget(bucket, "failure"),
            redis_client.hget(bucket, "done")) == ("2", "1", "3")
    assert redis_client.zcard(keys.recent) == 3


def test_a_task_carried_twice_is_not_counted_dropped_when_its_older_record_goes(
        settings_factory, redis_client, recorders):
    """After a failed flush a task can be carried twice: its STARTED record in a sealed chunk
    (never merged into again, it may have been applied) and its newer SUCCESS record. Evicting
    the older one loses nothing, so it is not counted as a drop, and the task ends SUCCESS."""
    s = settings_factory(WARDEN_BUFFER_SIZE=100)
    switch = Switch(dead_writer(s))
    r = manual(s, recorders, writer_factory=lambda: switch)
    for i in range(100):
        r.task(f"t{i}", static={"name": "n"}, attempt={"state": "STARTED"}, rank=RANK_STARTED)
    assert r.flush() is False  # 100 STARTED records sealed and carried
    for i in range(10):  # their successes evict the 10 oldest STARTED records
        r.task(f"t{i}", attempt={"state": "SUCCESS"}, rank=RANK_FINAL)
    assert r.flush() is False
    assert r.stats()["dropped"] == 0
    switch.target = StoreWriter(s)
    assert r.flush() is True
    keys = Keys(s.key_prefix)
    assert [redis_client.hget(keys.task(f"t{i}"), "state") for i in (0, 9, 10, 99)] == \
        ["SUCCESS", "SUCCESS", "STARTED", "STARTED"]
    assert redis_client.hget(keys.stats("recorder"), "dropped") is None


@pytest.mark.parametrize("order", ["first-publish-first", "re-publish-first"])
def test_a_retry_re_publish_keeps_the_first_send_time(settings, redis_client, recorders, order):
    """A retry's re-publish records its time as ``resent``: ``sent`` stays the first publish
    whichever process flushes first (the timeline of a retried task once started after its
    own retries because the re-publish overwrote ``sent``)."""
    first = manual(settings, recorders)  # the client that published the task
    again = manual(settings, recorders)  # the pool child whose retry re-published it
    base = ("t", "fleet.flaky", "default")
    first.sent((*base, 100.0, "0", None, None, None, 0, "client", None))
    again.sent((*base, 160.0, "0", None, None, 170.0, 1, "w@h", None))
    for rec in ([first, again] if order == "first-publish-first" else [again, first]):
        assert rec.flush() is True
    record = redis_client.hgetall(Keys(settings.key_prefix).task("t"))
    assert (record["sent"], record["resent"]) == ("100.000000", "160.000000")
    assert record["name"] == "fleet.flaky"


def test_flush_attempts_back_off_while_redis_is_away(settings_factory, redis_client, recorders):
    """Each attempt against a Redis that is away costs a connection (and, spooling, a segment
    file): the flusher thread waits twice as long after each failure, up to DOWN_RETRY_MAX, and
    goes back to the flush interval once a flush succeeds."""
    from celery_warden.record.recorder import DOWN_RETRY_MAX

    s = settings_factory(WARDEN_FLUSH_INTERVAL=0.05)
    switch = Switch(dead_writer(s))
    r = Recorder(s, writer_factory=lambda: switch)
    recorders.append(r)
    r.task("t0", attempt={"state": "SENT"}, rank=RANK_SENT)  # starts the flusher thread
    time.sleep(2.0)
    # 0.05 + 0.1 + 0.2 + 0.4 + 0.8 s: 5 or 6 attempts in 2 s, against ~40 without back-off.
    assert 4 <= r.stats()["flush_failures"] <= 7
    switch.target = StoreWriter(s)
    deadline = time.monotonic() + DOWN_RETRY_MAX + 1.0
    while r.stats()["written"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert redis_client.hget(Keys(s.key_prefix).task("t0"), "state") == "SENT"
    r.task("t1", attempt={"state": "SENT"}, rank=RANK_SENT)
    time.sleep(0.5)  # the flush interval again, not the back-off
    assert redis_client.hget(Keys(s.key_prefix).task("t1"), "state") == "SENT"


def test_a_task_whose_final_record_the_bound_drops_is_counted_once(settings_factory,
                                                                   redis_client, recorders):
    """A task still running at a failed flush is carried as STARTED; it ends, and the bound
    drops its final record from the buffer (counted: the task is lost), then the flusher
    evicts the carried STARTED one — the same task, not a second drop (it was counted twice:
    tests/integration/test_redis_outage.py saw recorded + dropped = 601 of 600)."""
    from tests.unit.test_totals import FakeRun

    s = settings_factory(WARDEN_BUFFER_SIZE=100)
    switch = Switch(dead_writer(s))
    r = manual(s, recorders, writer_factory=lambda: switch)
    run = FakeRun("t.work", "celery@host-a", "q1", 0.1)
    r.begin("x", run)  # type: ignore[arg-type]
    assert r.flush() is False  # carries x's STARTED record
    r.end("x", run, "t.work", {"state": "SUCCESS"}, RANK_FINAL, "success",  # type: ignore[arg-type]
          1.0e9, 0.01, 0.1)
    for i in range(100):  # the carried STARTED goes first, then x's final, the oldest here
        r.task(f"n{i}", attempt={"state": "SENT"}, rank=RANK_SENT)
    assert r.stats()["dropped"] == 2, "as the hot path sees it: two records"
    switch.target = StoreWriter(s)
    assert r.flush() is True
    keys = Keys(s.key_prefix)
    assert redis_client.exists(keys.task("x")) == 0, "no STARTED left for a finished task"
    assert redis_client.zcard(keys.recent) == 100
    assert r.stats()["dropped"] == 1, "one task lost, counted once"
    assert redis_client.hget(keys.stats("recorder"), "dropped") == "1"
