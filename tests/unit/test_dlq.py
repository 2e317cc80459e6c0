"""DeadLetterQueue against real Redis: storage, listing, requeue to the real broker, parking,
discard and expiry, claim leases, and publish failures.

Requeues are published by a plain Celery app on the test's own broker keys; the tests read the
broker's Redis lists directly (kombu's JSON envelope, base64 body) to see exactly what a worker
would receive. With ``WARDEN_BROKER_KEY_PREFIX`` a queue's list is ``<prefix><queue>`` and each
broker priority ``n > 0`` has its own list ``<prefix><queue>\\x06\\x16<n>``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from celery import Celery

from celery_warden import celery_config
from celery_warden.config import queue_name
from celery_warden.dlq.entry import DLQEntry
from celery_warden.dlq.store import DeadLetterQueue
from celery_warden.embedded import free_port
from celery_warden.headers import DLQ_ENTRY as ENTRY_HEADER
from celery_warden.headers import REQUEUES as REQUEUES_HEADER
from celery_warden.headers import replayable as replay_headers
from celery_warden.priority import HEADER as PRIORITY_HEADER
from celery_warden.priority import MAX_PRIORITY
from celery_warden.settings import WardenSettings

#: kombu's separator between a Redis queue name and its priority step.
PRIORITY_SEP = "\x06\x16"
DAY = 24 * 3600


# -- broker inspection (shared with test_tasks and the concurrency test) ----------------------
@dataclass
class Published:
    """One message sitting in a Redis broker list, decoded."""

    key: str
    broker_priority: int
    headers: dict[str, Any]
    properties: dict[str, Any]
    args: list[Any]
    kwargs: dict[str, Any]


def queue_keys(settings: WardenSettings, logical: str = "default") -> list[str]:
    """The broker list keys of one queue, priority 0 (the bare name) to 10."""
    base = f"{settings.broker_key_prefix}{queue_name(settings, logical)}"
    return [base] + [f"{base}{PRIORITY_SEP}{n}" for n in range(1, MAX_PRIORITY + 1)]


def broker_messages(client: redis.Redis, settings: WardenSettings,
                    logical: str = "default") -> list[Published]:
    """Every message waiting in one queue (all priority lists), oldest first per list."""
    out = []
    for n, key in enumerate(queue_keys(settings, logical)):
        for raw in reversed(client.lrange(key, 0, -1)):
            envelope = json.loads(raw)
            body = envelope["body"]
            if envelope["properties"].get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args, kwargs, _embed = json.loads(body)
            out.append(Published(key, n, envelope["headers"], envelope["properties"], args,
                                 kwargs))
    return out


# -- fixtures ----------------------------------------------------------------------------------
def make_app(settings: WardenSettings, **overrides: Any) -> Celery:
    app = Celery(f"dlq-{settings.key_prefix}", set_as_current=False)
    app.conf.update(celery_config(settings, **overrides))
    return app


@pytest.fixture
def app(settings: WardenSettings) -> Iterator[Celery]:
    """A plain Celery app (no Warden) publishing to the test's broker keys."""
    app = make_app(settings)
    yield app
    app.close()


@pytest.fixture
def dlq(settings: WardenSettings, app: Celery) -> Iterator[DeadLetterQueue]:
    q = DeadLetterQueue(settings, app=app)
    yield q
    q.redis.close()


@pytest.fixture
def dead_app(settings: WardenSettings) -> Iterator[Celery]:
    """An app whose broker address has nothing listening (publishing fails fast)."""
    app = make_app(
        settings, broker_url=f"redis://127.0.0.1:{free_port()}/0",
        task_publish_retry_policy={"max_retries": 1, "interval_start": 0,
                                   "interval_step": 0.05, "interval_max": 0.05},
        broker_connection_timeout=1,
    )
    yield app
    app.close()


@pytest.fixture
def short_lease(settings_factory) -> WardenSettings:
    """Settings whose DLQ claim lease is 0.2 s (keys deleted afterwards)."""
    return settings_factory(WARDEN_DLQ_CLAIM_LEASE=0.2)


def entry(settings: WardenSettings, entry_id: str, **fields: Any) -> DLQEntry:
    """A replayable entry for ``t.add`` on the default queue unless ``fields`` say otherwise."""
    base: dict[str, Any] = {
        "task_id": entry_id, "reason": "exception", "name": "t.add", "args": [1, 2],
        "kwargs": {"scale": 3}, "queue": queue_name(settings, "default"),
        "exc_type": "ValueError", "exc_message": "boom", "traceback": "Traceback ...",
    }
    base.update(fields)
    return DLQEntry(id=entry_id, **base)


# -- add / get / list ----------------------------------------------------------------------------
def test_add_then_get_round_trips_every_field(dlq, settings):
    """An added entry reads back with the same message, failure and history; it is pending,
    counted once, and listed in the DLQ and the ready set."""
    e = entry(settings, "e1", priority=7, headers={"warden_options": {"max_retries": 1}},
              history=[{"attempt": 0, "exc_type": "ValueError"}], worker="w1@h",
              routing_key="rk", exchange="ex")
    dlq.add(e)
    got = dlq.get("e1")
    assert got is not None
    assert got.status == "pending"
    assert got.failures == 1
    assert got.first_failed == got.last_failed == e.last_failed > 0
    for field in ("task_id", "reason", "name", "args", "kwargs", "queue", "priority", "headers",
                  "exc_type", "exc_message", "traceback", "history", "worker", "routing_key",
                  "exchange", "requeues", "requeued_task_ids", "raw"):
        assert getattr(got, field) == getattr(e, field), field
    stats = dlq.stats()
    assert (stats["size"], stats["ready"], stats["claimed"]) == (1, 1, 0)
    assert stats["added"] == 1
    assert stats["reason:exception"] == 1
    assert dlq.get("missing") is None


def test_list_is_newest_first_with_limit_and_offset(dlq, settings):
    """Entries list by last failure time, newest first; limit and offset page through them."""
    now = time.time()
    for i in range(6):
        dlq.add(entry(settings, f"e{i}", last_failed=now - 100 + i * 10))
    assert [e.id for e in dlq.list_entries()] == ["e5", "e4", "e3", "e2", "e1", "e0"]
    assert [e.id for e in dlq.list_entries(limit=2)] == ["e5", "e4"]
    assert [e.id for e in dlq.list_entries(limit=2, offset=2)] == ["e3", "e2"]
    assert [e.id for e in dlq.list_entries(limit=10, offset=5)] == ["e0"]
    assert [e.id for e in dlq.list_entries(page=2)] == ["e5", "e4", "e3", "e2", "e1", "e0"]


def test_list_filters_by_name_reason_status_and_age(dlq, settings):
    """Filters combine: task name, reason, status, older_than and newer_than (seconds ago)."""
    now = time.time()
    dlq.add(entry(settings, "a", name="t.a", reason="exception", last_failed=now - 5))
    dlq.add(entry(settings, "b", name="t.b", reason="max_retries", last_failed=now - 50))
    dlq.add(entry(settings, "c", name="t.a", reason="max_retries", last_failed=now - 500))
    dlq.add(entry(settings, "d", name=None, reason="undecodable", args=None, kwargs=None,
                  last_failed=now - 5000))

    def ids(**kw: Any) -> list[str]:
        return [e.id for e in dlq.list_entries(**kw)]

    assert ids(task_name="t.a") == ["a", "c"]
    assert ids(reason="max_retries") == ["b", "c"]
    assert ids(reason="undecodable") == ["d"]
    assert ids(status="parked") == ["d"]
    assert ids(status="pending") == ["a", "b", "c"]
    assert ids(older_than=30) == ["b", "c", "d"]
    assert ids(newer_than=100) == ["a", "b"]
    assert ids(older_than=30, newer_than=1000) == ["b", "c"]
    assert ids(task_name="t.a", reason="max_retries", older_than=30) == ["c"]
    assert ids(task_name="t.a", offset=1) == ["c"]
    assert ids(task_name="nope") == []


def test_re_adding_an_entry_updates_it(dlq, settings):
    """The same entry id failing again is one entry: failures count up, first_failed is kept,
    last_failed, message and failure details are the newest, the listing score moves."""
    now = time.time()
    dlq.add(entry(settings, "e1", last_failed=now - 600, exc_message="first"))
    dlq.add(entry(settings, "other", last_failed=now - 300))
    dlq.add(entry(settings, "e1", last_failed=now - 10, exc_message="second", args=[9]))
    got = dlq.get("e1")
    assert got is not None
    assert got.failures == 2
    assert got.first_failed == pytest.approx(now - 600)
    assert got.last_failed == pytest.approx(now - 10)
    assert (got.exc_message, got.args) == ("second", [9])
    assert dlq.size() == 2
    assert [e.id for e in dlq.list_entries()] == ["e1", "other"]
    assert dlq.stats()["added"] == 3


@pytest.mark.parametrize("fields", [
    {"name": None}, {"name": ""}, {"args": None}, {"kwargs": None},
])
def test_entries_that_cannot_be_replayed_are_parked_on_add(dlq, settings, fields):
    """No task name or no decoded args/kwargs (an undecodable body): parked at once, in the DLQ
    but never in the ready set."""
    e = dlq.add(entry(settings, "e1", reason="undecodable", **fields))
    assert e.status == "parked"
    assert dlq.get("e1").status == "parked"
    assert (dlq.size(), dlq.stats()["ready"]) == (1, 0)


def test_entries_at_the_requeue_limit_are_parked_on_add(dlq, settings):
    """An entry already requeued WARDEN_DLQ_MAX_REQUEUES times is parked; one below it is not."""
    limit = settings.dlq_max_requeues
    assert dlq.add(entry(settings, "at", requeues=limit)).status == "parked"
    assert dlq.add(entry(settings, "over", requeues=limit + 5)).status == "parked"
    assert dlq.add(entry(settings, "below", requeues=limit - 1)).status == "pending"
    assert dlq.stats()["ready"] == 1


def test_add_normalises_a_stale_status(dlq, settings):
    """An entry object carrying status claimed/requeued is stored as pending (replayable)."""
    assert dlq.add(entry(settings, "e1", status="requeued")).status == "pending"
    assert dlq.add(entry(settings, "e2", status="claimed")).status == "pending"
    assert dlq.stats()["ready"] == 2


# -- requeue --------------------------------------------------------------------------------------
def test_process_requeues_to_the_original_queue_with_message_and_headers(
        dlq, settings, redis_client):
    """process(requeue=True) publishes the original task name, args, kwargs and priority to the
    entry's queue with a deterministic id ``<entry>-r1``, the entry/requeue headers and the
    replayable warden_* headers (delivery state dropped); the entry leaves the DLQ as requeued
    with the new task id recorded."""
    headers = {"warden_options": {"max_retries": 1}, "warden_history": [{"attempt": 0}],
               "warden_sent": 123.0, "warden_received": 124.0, "x-other": "not ours",
               PRIORITY_HEADER: 2}
    dlq.add(entry(settings, "e1", queue=queue_name(settings, "high_priority"), priority=7,
                  headers=headers))
    counts = dlq.process(max_items=10)
    assert counts == {"requeued": 1, "parked": 0, "discarded": 0, "failed": 0, "claimed": 1,
                      "vanished": 0, "malformed": 0}

    assert broker_messages(redis_client, settings, "default") == []
    [msg] = broker_messages(redis_client, settings, "high_priority")
    assert msg.headers["task"] == "t.add"
    assert msg.headers["id"] == "e1-r1"
    assert (msg.args, msg.kwargs) == ([1, 2], {"scale": 3})
    assert msg.headers[ENTRY_HEADER] == "e1"
    assert msg.headers[REQUEUES_HEADER] == 1
    assert msg.headers[PRIORITY_HEADER] == 7
    assert msg.headers["warden_options"] == {"max_retries": 1}
    assert msg.headers["warden_history"] == [{"attempt": 0}]
    assert "warden_sent" not in msg.headers
    assert "warden_received" not in msg.headers
    assert "x-other" not in msg.headers
    # Redis polls priority lists in ascending order: user priority 7 is broker priority 3.
    assert msg.properties["priority"] == MAX_PRIORITY - 7
    assert msg.broker_priority == MAX_PRIORITY - 7

    got = dlq.get("e1")
    assert got is not None
    assert got.status == "requeued"
    assert got.requeues == 1
    assert got.requeued_task_ids == ["e1-r1"]
    assert dlq.size() == 0
    stats = dlq.stats()
    assert (stats["ready"], stats["claimed"], stats["requeued"]) == (0, 0, 1)
    assert dlq.list_entries() == []


def test_requeued_task_failing_again_updates_the_same_entry(dlq, settings, redis_client):
    """The requeued task (``warden_dlq_entry`` header) failing again re-adds the same entry:
    requeue count carried over, second requeue gets ``-r2``, both new task ids kept."""
    dlq.add(entry(settings, "e1"))
    dlq.process()
    [first] = broker_messages(redis_client, settings)
    dlq.add(entry(settings, "e1", task_id=first.headers["id"],
                  requeues=first.headers[REQUEUES_HEADER],
                  headers=replay_headers(first.headers)))
    again = dlq.get("e1")
    assert again is not None
    assert (again.status, again.failures, again.requeues) == ("pending", 2, 1)
    assert dlq.size() == 1
    assert dlq.process()["requeued"] == 1
    ids = sorted(m.headers["id"] for m in broker_messages(redis_client, settings))
    assert ids == ["e1-r1", "e1-r2"]
    final = dlq.get("e1")
    assert final is not None
    assert final.requeues == 2
    assert final.requeued_task_ids == ["e1-r1", "e1-r2"]


def test_process_respects_max_items(dlq, settings, redis_client):
    """process(max_items=n) claims and requeues at most n entries per call."""
    for i in range(7):
        dlq.add(entry(settings, f"e{i}"))
    assert dlq.process(max_items=3)["requeued"] == 3
    assert dlq.size() == 4
    assert dlq.process(max_items=3)["requeued"] == 3
    assert dlq.process(max_items=3)["requeued"] == 1
    assert dlq.process(max_items=3)["claimed"] == 0
    assert len(broker_messages(redis_client, settings)) == 7


def test_process_without_requeue_parks_and_parked_entries_are_never_requeued(
        dlq, settings, redis_client):
    """process(requeue=False) parks every ready entry; later automatic processing never picks a
    parked entry up, so nothing is published."""
    for i in range(3):
        dlq.add(entry(settings, f"e{i}"))
    counts = dlq.process(requeue=False)
    assert (counts["parked"], counts["requeued"], counts["claimed"]) == (3, 0, 3)
    assert {e.status for e in dlq.list_entries()} == {"parked"}
    assert dlq.size() == 3
    for _ in range(3):
        assert dlq.process(requeue=True)["claimed"] == 0
    assert broker_messages(redis_client, settings) == []
    stats = dlq.stats()
    assert (stats["ready"], stats["claimed"], stats["parked"]) == (0, 0, 3)


def test_park_holds_an_entry_with_a_note(dlq, settings, redis_client):
    """park(id, note) takes an entry out of automatic processing and keeps the note."""
    dlq.add(entry(settings, "e1"))
    assert dlq.park("e1", note="waiting for the vendor fix")
    assert not dlq.park("missing")
    got = dlq.get("e1")
    assert got is not None
    assert (got.status, got.note) == ("parked", "waiting for the vendor fix")
    assert dlq.process()["claimed"] == 0
    assert broker_messages(redis_client, settings) == []


def test_manual_requeue_of_a_parked_entry_needs_force(dlq, settings, redis_client):
    """requeue(id) leaves a parked entry alone; requeue(id, force=True) publishes it now."""
    dlq.add(entry(settings, "e1", requeues=settings.dlq_max_requeues))
    assert dlq.get("e1").status == "parked"
    assert dlq.requeue("e1") is None
    assert dlq.get("e1").status == "parked"
    assert broker_messages(redis_client, settings) == []

    new_id = dlq.requeue("e1", force=True)
    expected = f"e1-r{settings.dlq_max_requeues + 1}"
    assert new_id == expected
    [msg] = broker_messages(redis_client, settings)
    assert msg.headers["id"] == expected
    assert msg.headers[REQUEUES_HEADER] == settings.dlq_max_requeues + 1
    assert "eta" not in msg.headers or msg.headers["eta"] is None  # manual: no backoff
    assert dlq.get("e1").status == "requeued"
    assert dlq.size() == 0


def test_manual_requeue_of_a_pending_entry_and_of_unknown_ids(dlq, settings, redis_client):
    """requeue(id) of a pending entry publishes at once; an unknown or already requeued id
    returns None and publishes nothing more."""
    dlq.add(entry(settings, "e1"))
    assert dlq.requeue("e1") == "e1-r1"
    assert dlq.requeue("e1") is None
    assert dlq.requeue("e1", force=True) is None
    assert dlq.requeue("missing", force=True) is None
    assert [m.headers["id"] for m in broker_messages(redis_client, settings)] == ["e1-r1"]


def test_forced_requeue_of_an_unreplayable_entry_keeps_it_parked(dlq, settings):
    """An undecodable entry cannot be re-published: a forced requeue returns None and the
    entry stays parked (never becomes eligible for automatic requeue)."""
    dlq.add(entry(settings, "e1", reason="undecodable", name=None, args=None, kwargs=None))
    assert dlq.requeue("e1", force=True) is None
    got = dlq.get("e1")
    assert got is not None
    assert got.status == "parked"
    stats = dlq.stats()
    assert (stats["size"], stats["ready"], stats["claimed"]) == (1, 0, 0)


# -- discard and expiry -----------------------------------------------------------------------
def test_discard_removes_an_entry_for_good(dlq, settings):
    """discard(id) removes the entry and its hash and counts it; a second discard is False."""
    dlq.add(entry(settings, "e1"))
    dlq.add(entry(settings, "e2"))
    assert dlq.discard("e1") is True
    assert dlq.discard("e1") is False
    assert dlq.get("e1") is None
    stats = dlq.stats()
    assert (stats["size"], stats["ready"], stats["discarded"]) == (1, 1, 1)
    assert dlq.process()["requeued"] == 1  # only e2 is left to requeue


def test_discard_older_than_counts_exactly(dlq, settings):
    """discard_older_than(s) removes exactly the entries whose last failure is older than s,
    whatever their status, and returns how many."""
    now = time.time()
    for i in range(7):
        dlq.add(entry(settings, f"old{i}", last_failed=now - 1000 - i))
    dlq.add(entry(settings, "old-parked", name=None, last_failed=now - 2000))
    for i in range(3):
        dlq.add(entry(settings, f"new{i}", last_failed=now - 10))
    assert dlq.discard_older_than(500) == 8
    assert sorted(e.id for e in dlq.list_entries()) == ["new0", "new1", "new2"]
    stats = dlq.stats()
    assert (stats["size"], stats["ready"], stats["discarded"]) == (3, 3, 8)
    assert dlq.discard_older_than(500) == 0


def test_discard_older_than_handles_more_than_one_batch(dlq, settings):
    """More old entries than one internal batch (500) are all removed and counted."""
    now = time.time()
    pipe_entries = [entry(settings, f"e{i}", last_failed=now - 5000) for i in range(1203)]
    for e in pipe_entries:
        dlq.add(e)
    assert dlq.discard_older_than(60) == 1203
    assert dlq.size() == 0


def test_process_can_discard_old_entries_first(dlq, settings, redis_client):
    """process(discard_older_than=s) removes old entries before requeueing the rest."""
    now = time.time()
    dlq.add(entry(settings, "old", last_failed=now - 3600))
    dlq.add(entry(settings, "new", last_failed=now - 1))
    counts = dlq.process(discard_older_than=600)
    assert (counts["discarded"], counts["requeued"]) == (1, 1)
    assert [m.headers["id"] for m in broker_messages(redis_client, settings)] == ["new-r1"]


def test_expire_removes_entries_past_the_max_age_counted_as_expired(dlq, settings):
    """expire() removes entries older than WARDEN_DLQ_MAX_AGE and counts them as ``expired``
    (not ``discarded``) in the stats."""
    now = time.time()
    max_age = settings.dlq_max_age
    for i in range(4):
        dlq.add(entry(settings, f"stale{i}", last_failed=now - max_age - 60 * (i + 1)))
    dlq.add(entry(settings, "fresh", last_failed=now - max_age + DAY))
    assert dlq.expire() == 4
    assert [e.id for e in dlq.list_entries()] == ["fresh"]
    stats = dlq.stats()
    assert stats["expired"] == 4
    assert "discarded" not in stats
    assert dlq.expire() == 0


# -- claims and leases --------------------------------------------------------------------------
def test_a_claimed_entry_is_not_claimed_twice_while_its_lease_runs(dlq, settings):
    """claim() hands each ready entry to one claimer; a second claim gets nothing."""
    for i in range(5):
        dlq.add(entry(settings, f"e{i}"))
    token_a, ids_a = dlq.claim(3)
    token_b, ids_b = dlq.claim(10)
    assert token_a != token_b
    assert len(ids_a) == 3
    assert len(ids_b) == 2
    assert not set(ids_a) & set(ids_b)
    assert dlq.claim(10)[1] == []
    assert {e.status for e in dlq.list_entries()} == {"claimed"}
    assert dlq.stats()["claimed"] == 5


def test_an_expired_claim_can_be_reclaimed_and_the_old_token_cannot_finish(
        short_lease, redis_client):
    """After the lease runs out the entry is claimable again; the first claimer's token no
    longer finishes it, the new claimer's does (so the entry is requeued once)."""
    app = make_app(short_lease)
    dlq = DeadLetterQueue(short_lease, app=app)
    try:
        dlq.add(entry(short_lease, "e1"))
        old_token, ids = dlq.claim(10)
        assert ids == ["e1"]
        assert dlq.claim(10)[1] == []
        time.sleep(short_lease.dlq_claim_lease * 2)
        new_token, ids = dlq.claim(10)
        assert ids == ["e1"]
        assert not dlq.processor._finish("e1", old_token, "requeued", "requeued", {})
        assert dlq.get("e1").status == "claimed"
        assert dlq.processor._finish("e1", new_token, "requeued", "requeued", {})
        assert not dlq.processor._finish("e1", new_token, "requeued", "requeued", {})
        assert dlq.get("e1").status == "requeued"
        stats = dlq.stats()
        assert (stats["size"], stats["claimed"], stats["requeued"]) == (0, 0, 1)
    finally:
        dlq.redis.close()
        app.close()


def test_expired_claims_return_to_processing(short_lease, redis_client):
    """A processor that died holding claims loses them at lease expiry: process() by another
    one then requeues those entries."""
    app = make_app(short_lease)
    dlq = DeadLetterQueue(short_lease, app=app)
    try:
        for i in range(4):
            dlq.add(entry(short_lease, f"e{i}"))
        _abandoned, ids = dlq.claim(10)
        assert len(ids) == 4
        assert dlq.process()["claimed"] == 0
        time.sleep(short_lease.dlq_claim_lease * 2)
        assert dlq.process()["requeued"] == 4
        assert len(broker_messages(redis_client, short_lease)) == 4
        assert dlq.size() == 0
    finally:
        dlq.redis.close()
        app.close()


# -- publish failures -----------------------------------------------------------------------
def test_publish_failure_keeps_the_entry_in_the_dlq(settings, dead_app, dlq, caplog):
    """When the broker is unreachable the entry is released, not lost: still in the DLQ,
    pending, unclaimed, requeue count unchanged; a later requeue through a live broker
    succeeds."""
    dlq.add(entry(settings, "e1"))
    broken = DeadLetterQueue(settings, app=dead_app)
    try:
        counts = broken.process()
    finally:
        broken.redis.close()
    assert (counts["failed"], counts["requeued"], counts["claimed"]) == (1, 0, 1)
    assert "stays in the DLQ" in caplog.text
    got = dlq.get("e1")
    assert got is not None
    assert (got.status, got.requeues, got.requeued_task_ids) == ("pending", 0, [])
    stats = dlq.stats()
    assert (stats["size"], stats["ready"], stats["claimed"]) == (1, 1, 0)
    assert "requeued" not in stats
    assert dlq.requeue("e1") == "e1-r1"
    assert dlq.size() == 0


def test_publish_failure_of_a_forced_requeue_keeps_the_entry_parked(
        settings, dead_app, dlq, redis_client):
    """A manual forced requeue of a parked entry that fails to publish leaves it parked: it
    must not turn into an entry that automatic processing would requeue."""
    dlq.add(entry(settings, "e1"))
    dlq.park("e1", note="manual review")
    broken = DeadLetterQueue(settings, app=dead_app)
    try:
        assert broken.requeue("e1", force=True) is None
    finally:
        broken.redis.close()
    got = dlq.get("e1")
    assert got is not None
    assert got.status == "parked"
    stats = dlq.stats()
    assert (stats["size"], stats["ready"], stats["claimed"]) == (1, 0, 0)
    assert dlq.process()["claimed"] == 0
    assert broker_messages(redis_client, settings) == []


# -- failure text: masked for people, the message kept for requeue untouched ----------------------
SECRET_TEXT = "ConnectionError: password=hunter2 token=abc"


def test_add_masks_failure_text_but_keeps_the_message_for_requeue(dlq, settings):
    """Every entry written (whatever captured it) has its error message, traceback and retry
    history masked; args, kwargs and headers — what a requeue replays — stay as they were."""
    e = entry(settings, "s1", args=["password=hunter2"], kwargs={"token": "abc"},
              headers={"warden_history": [{"exc_msg": "password=hunter2"}]},
              exc_message="password=hunter2 token=abc",
              traceback="Traceback (most recent call last):\n  ...\n" + SECRET_TEXT,
              history=[{"attempt": 0, "exc_type": "ConnectionError",
                        "exc_msg": "password=hunter2 token=abc"}])
    dlq.add(e)
    got = dlq.get("s1")
    assert got.exc_message == "password=[redacted] token=[redacted]"
    assert got.traceback.endswith("ConnectionError: password=[redacted] token=[redacted]")
    assert got.history[0]["exc_msg"] == "password=[redacted] token=[redacted]"
    assert got.args == ["password=hunter2"] and got.kwargs == {"token": "abc"}
    assert got.headers == {"warden_history": [{"exc_msg": "password=hunter2"}]}


def test_view_masks_failure_text_of_entries_stored_unmasked(dlq, settings, redis_client):
    """An entry written before failure text was masked (or by another writer) is masked when
    it is shown: error message, traceback, history, as well as args, kwargs and headers."""
    e = entry(settings, "s2", args=["password=hunter2"], exc_message=SECRET_TEXT,
              traceback=SECRET_TEXT, history=[{"exc_msg": SECRET_TEXT}])
    redis_client.hset(dlq.keys.dlq_entry("s2"), mapping=e.to_hash())
    view = dlq.view(dlq.get("s2"))
    assert "hunter2" not in json.dumps(view) and "token=abc" not in json.dumps(view)
    assert view["exc_message"] == "ConnectionError: password=[redacted] token=[redacted]"
    assert view["history"] == [{"exc_msg": view["exc_message"]}]
    assert dlq.get("s2").args == ["password=hunter2"], "the stored message is not changed"


def test_the_same_failure_written_twice_is_counted_once(dlq, settings, redis_client):
    """A write that timed out on the task's path but reached Redis, then delivered again from
    the spool (same failure, same last_failed): one failure, one `added`; a later failure of
    the same task counts."""
    e = entry(settings, "twice")
    dlq.add(e)
    spooled = DLQEntry.from_hash(e.to_hash())  # what the spool keeps and delivers
    dlq.add(spooled)
    got = dlq.get("twice")
    assert got is not None and got.failures == 1
    assert redis_client.hget(dlq.keys.dlq_stats, "added") == "1"
    again = entry(settings, "twice")
    again.last_failed = e.last_failed + 5
    dlq.add(again)
    got = dlq.get("twice")
    assert got is not None and got.failures == 2


def test_an_exception_message_with_a_lone_surrogate_still_reaches_the_dlq(dlq, settings):
    """``open()`` on a name decoded with ``surrogateescape`` raises with a lone surrogate in
    its message, which UTF-8 cannot carry: Redis's client refused the string and the whole
    entry was lost. It is stored with the surrogate escaped; everything else as given."""
    e = entry(settings, "sur1", exc_type="FileNotFoundError",
              exc_message="[Errno 2] No such file: 'r\udcffport.csv' <script>[i]",
              traceback="Traceback ...\n  open('r\udcffport.csv')\n", worker="w\udcff")
    dlq.add(e)
    got = dlq.get("sur1")
    assert got is not None and not got.broken
    assert got.exc_message == "[Errno 2] No such file: 'r\\udcffport.csv' <script>[i]"
    assert got.traceback == "Traceback ...\n  open('r\\udcffport.csv')\n"
    assert got.worker == "w\\udcff"
    assert (got.name, got.args, got.kwargs) == ("t.add", [1, 2], {"scale": 3})
