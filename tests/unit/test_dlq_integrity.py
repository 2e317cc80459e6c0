"""DLQ ids whose entry is gone or unreadable: claims, processing, listing, expiry and the
manual operations against real Redis.

An entry hash (``P:dlq:e:<id>``) can disappear while its id is still in ``P:dlq``,
``P:dlq:ready`` or ``P:dlq:claims`` (its TTL ran out, ``maxmemory`` evicted it, somebody deleted
it), and a hash can be unreadable (written by another version or by hand). These tests pin that
such an id is cleaned from every index and counted, that such a hash is reported, counted and
skipped, that nothing ever writes a stub hash for a missing entry, and that the other entries
of the same call are handled normally.

Races are made deterministic with :class:`InterleavingRedis`: a real client that, right after
one chosen command returned, runs a step of a "concurrent" actor (on its own connection). Redis
is real; only the moment of the other actor's step is chosen.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from celery import Celery

from celery_warden.dlq.entry import DLQEntry
from celery_warden.dlq.store import DeadLetterQueue
from celery_warden.settings import WardenSettings
from tests.unit.test_dlq import broker_messages, entry, make_app

DAY = 24 * 3600


class InterleavingRedis(redis.Redis):
    """A real client that runs ``step`` once, right after the first command named in
    ``commands`` whose arguments include ``arg`` returned: the other actor acts at that point."""

    def __init__(self, url: str, *, commands: set[str], arg: str,
                 step: Callable[[], Any]) -> None:
        super().__init__(connection_pool=redis.ConnectionPool.from_url(
            url, decode_responses=True))
        self._commands, self._arg, self._step = commands, arg, step
        self.fired = False

    def execute_command(self, *args: Any, **options: Any) -> Any:
        result = super().execute_command(*args, **options)
        if (not self.fired and str(args[0]).upper() in self._commands
                and self._arg in map(str, args[1:])):
            self.fired = True
            self._step()
        return result


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


def indexed(dlq: DeadLetterQueue, entry_id: str) -> dict[str, bool]:
    """In which DLQ index the id is."""
    k = dlq.keys
    return {name: dlq.redis.zscore(key, entry_id) is not None
            for name, key in (("dlq", k.dlq), ("ready", k.dlq_ready), ("claims", k.dlq_claims))}


NOWHERE = {"dlq": False, "ready": False, "claims": False}


def vanish(dlq: DeadLetterQueue, entry_id: str) -> None:
    """The entry hash disappears (TTL, eviction, a manual DEL); its ids stay indexed."""
    assert dlq.redis.delete(dlq.keys.dlq_entry(entry_id)) == 1


# -- ids whose entry hash vanished ------------------------------------------------------------
def test_process_skips_a_vanished_entry_cleans_its_ids_and_requeues_the_others(
        dlq, settings, redis_client):
    """process() with a vanished entry among valid ones: no exception, no stub hash written,
    the dangling id is removed from every index and counted as vanished (in the result and in
    the stats), and the valid entries of the same call are requeued."""
    for i in range(3):
        dlq.add(entry(settings, f"e{i}"))
    vanish(dlq, "e1")
    assert dlq.size() == 3

    counts = dlq.process(max_items=10)

    assert (counts["requeued"], counts["vanished"], counts["claimed"]) == (2, 1, 2)
    assert redis_client.exists(dlq.keys.dlq_entry("e1")) == 0
    assert indexed(dlq, "e1") == NOWHERE
    assert sorted(m.headers["id"] for m in broker_messages(redis_client, settings)) == [
        "e0-r1", "e2-r1"]
    assert dlq.size() == 0 == len(dlq.list_entries())
    stats = dlq.stats()
    assert (stats["ready"], stats["claimed"], stats["vanished"]) == (0, 0, 1)


def test_claim_never_creates_a_stub_hash(dlq, settings, redis_client):
    """claim() skips a ready id whose hash is gone (nothing written under its key, so no hash
    without a TTL is left behind) and still fills the batch with the next ready entries."""
    now = time.time()
    for i in range(4):
        dlq.add(entry(settings, f"e{i}", last_failed=now - 100 + i))
    vanish(dlq, "e0")
    vanish(dlq, "e1")
    _token, ids = dlq.claim(2)
    assert ids == ["e2", "e3"]
    for gone in ("e0", "e1"):
        assert redis_client.exists(dlq.keys.dlq_entry(gone)) == 0
        assert indexed(dlq, gone) == NOWHERE
    assert dlq.stats()["vanished"] == 2


def test_an_expired_claim_whose_entry_vanished_is_cleaned(short_lease, redis_client):
    """A claimed entry whose hash disappears while claimed: when the lease runs out the next
    claim removes its id from every index instead of putting it back in the ready set."""
    app = make_app(short_lease)
    dlq = DeadLetterQueue(short_lease, app=app)
    try:
        dlq.add(entry(short_lease, "e1"))
        assert dlq.claim(10)[1] == ["e1"]
        vanish(dlq, "e1")
        time.sleep(short_lease.dlq_claim_lease * 2)
        assert dlq.claim(10)[1] == []
        assert indexed(dlq, "e1") == NOWHERE
        assert redis_client.exists(dlq.keys.dlq_entry("e1")) == 0
        assert dlq.size() == 0
        assert dlq.stats()["vanished"] == 1
    finally:
        dlq.redis.close()
        app.close()


@pytest.fixture
def short_lease(settings_factory) -> WardenSettings:
    """Settings whose DLQ claim lease is 0.2 s (keys deleted afterwards)."""
    return settings_factory(WARDEN_DLQ_CLAIM_LEASE=0.2)


def test_manual_requeue_of_a_vanished_entry_cleans_its_ids(dlq, settings, redis_client):
    """requeue(id) of an id whose hash is gone publishes nothing, writes nothing under the key
    and removes the id from every index."""
    dlq.add(entry(settings, "e1"))
    dlq.add(entry(settings, "e2", requeues=settings.dlq_max_requeues))  # parked
    vanish(dlq, "e1")
    vanish(dlq, "e2")
    assert dlq.requeue("e1") is None
    assert dlq.requeue("e2", force=True) is None
    assert broker_messages(redis_client, settings) == []
    for gone in ("e1", "e2"):
        assert redis_client.exists(dlq.keys.dlq_entry(gone)) == 0
        assert indexed(dlq, gone) == NOWHERE
    assert dlq.size() == 0


def test_listing_cleans_vanished_ids_so_size_agrees(dlq, settings):
    """list_entries() passes over ids whose hash is gone, reports how many, and removes them
    from the indexes, so size() then equals what can be listed."""
    for i in range(3):
        dlq.add(entry(settings, f"e{i}"))
    vanish(dlq, "e1")
    page = dlq.list_entries()
    assert sorted(e.id for e in page) == ["e0", "e2"]
    assert (page.vanished, page.skipped) == (1, 0)
    assert dlq.size() == 2 == len(dlq.list_entries())
    assert indexed(dlq, "e1") == NOWHERE


def test_expire_also_removes_vanished_ids_of_any_age(dlq, settings):
    """expire() removes entries past WARDEN_DLQ_MAX_AGE and, whatever their age, ids whose
    hash vanished (a parked one is in no ready set, so no claim would ever meet it); the
    vanished ones are counted as vanished, not as expired."""
    now = time.time()
    dlq.add(entry(settings, "stale", last_failed=now - settings.dlq_max_age - 60))
    dlq.add(entry(settings, "fresh"))
    dlq.add(entry(settings, "gone-parked", name=None))
    dlq.add(entry(settings, "gone-pending"))
    dlq.add(entry(settings, "gone-old", last_failed=now - settings.dlq_max_age - 60))
    for gone in ("gone-parked", "gone-pending", "gone-old"):
        vanish(dlq, gone)

    assert dlq.expire() == 1
    assert [e.id for e in dlq.list_entries()] == ["fresh"]
    assert dlq.size() == 1
    for gone in ("gone-parked", "gone-pending", "gone-old"):
        assert indexed(dlq, gone) == NOWHERE
    stats = dlq.stats()
    assert (stats["expired"], stats["vanished"], stats["ready"]) == (1, 3, 1)


def test_discard_of_a_vanished_id_cleans_it_without_counting_a_discard(dlq, settings):
    """discard(id) of an id whose hash is gone removes the id from every index, answers False
    (there was no entry) and counts it as vanished, not discarded."""
    dlq.add(entry(settings, "e1"))
    vanish(dlq, "e1")
    assert dlq.discard("e1") is False
    assert indexed(dlq, "e1") == NOWHERE
    stats = dlq.stats()
    assert stats["vanished"] == 1
    assert "discarded" not in stats


# -- no path resurrects a deleted entry ---------------------------------------------------------
def test_park_is_atomic_with_the_entry_existing(settings, app, redis_client):
    """An entry discarded right after park() first touched it is not resurrected: nothing is
    left under its key or in any index (before: EXISTS, then a separate write that left a
    ``status``-only hash without a TTL)."""
    other = DeadLetterQueue(settings, app=app)
    key = other.keys.dlq_entry("e1")
    client = InterleavingRedis(settings.redis_url, commands={"EXISTS", "EVALSHA"}, arg=key,
                               step=lambda: other.discard("e1"))
    dlq = DeadLetterQueue(settings, app=app, client=client)
    try:
        other.add(entry(settings, "e1"))
        dlq.park("e1", note="review")
        assert client.fired
        assert redis_client.exists(key) == 0
        assert indexed(dlq, "e1") == NOWHERE
    finally:
        client.close()
        other.redis.close()


def test_park_of_a_missing_or_requeued_entry_changes_nothing(dlq, settings, redis_client):
    """park() of an id without an entry answers False and writes nothing; park() of an entry
    that already left the DLQ (requeued) answers False and leaves it requeued (it would
    otherwise be a parked entry no listing shows)."""
    assert dlq.park("missing") is False
    assert redis_client.exists(dlq.keys.dlq_entry("missing")) == 0
    dlq.add(entry(settings, "e1"))
    assert dlq.process()["requeued"] == 1
    assert dlq.park("e1") is False
    assert dlq.get("e1").status == "requeued"
    assert dlq.size() == 0
    assert "parked" not in dlq.stats()


def test_release_does_not_resurrect_an_entry_discarded_meanwhile(settings, app, redis_client):
    """The entry is discarded while its claim is being given back (a failed re-publish): the
    release must not write a ``status`` hash or put the id back in the ready set (before: HGET
    of the token, then a separate write)."""
    other = DeadLetterQueue(settings, app=app)
    key = other.keys.dlq_entry("e1")
    client = InterleavingRedis(settings.redis_url, commands={"HGET", "EVALSHA"}, arg=key,
                               step=lambda: other.discard("e1"))
    dlq = DeadLetterQueue(settings, app=app, client=client)
    try:
        other.add(entry(settings, "e1"))
        token, ids = dlq.claim(10)
        assert ids == ["e1"]
        dlq.processor._release("e1", token)
        assert client.fired
        assert redis_client.exists(key) == 0
        assert indexed(dlq, "e1") == NOWHERE
    finally:
        client.close()
        other.redis.close()


def test_finish_of_a_discarded_entry_writes_nothing(dlq, settings, redis_client):
    """An entry discarded while claimed: finishing the claim writes nothing under its key."""
    dlq.add(entry(settings, "e1"))
    token, _ids = dlq.claim(10)
    dlq.discard("e1")
    assert not dlq.processor._finish("e1", token, "requeued", "requeued", {"requeues": "1"})
    assert redis_client.exists(dlq.keys.dlq_entry("e1")) == 0
    assert indexed(dlq, "e1") == NOWHERE


# -- add --------------------------------------------------------------------------------------
def test_add_over_a_key_of_the_wrong_type_writes_nothing(dlq, settings, redis_client):
    """add() where the entry key holds a string fails as a whole: no id in any index, no
    counter changed (before: MULTI applied the index writes and failed only the hash writes,
    leaving an id that points at no entry)."""
    redis_client.set(dlq.keys.dlq_entry("e1"), "not a hash")
    with pytest.raises(redis.ResponseError):
        dlq.add(entry(settings, "e1"))
    assert indexed(dlq, "e1") == NOWHERE
    assert redis_client.get(dlq.keys.dlq_entry("e1")) == "not a hash"
    assert "added" not in dlq.stats()


def test_add_repairs_unreadable_counters_of_an_existing_entry(dlq, settings, redis_client):
    """Re-adding an entry whose stored ``failures`` or ``first_failed`` is not a number
    (another writer) stores a readable entry: failures restart at 1, first_failed is the new
    failure's time."""
    key = dlq.keys.dlq_entry("e1")
    redis_client.hset(key, mapping={"failures": "many", "first_failed": "yesterday"})
    e = dlq.add(entry(settings, "e1"))
    got = dlq.get("e1")
    assert got is not None and got.broken is None
    assert got.failures == 1
    assert got.first_failed == pytest.approx(e.last_failed)
    assert indexed(dlq, "e1") == {"dlq": True, "ready": True, "claims": False}


# -- malformed entries ----------------------------------------------------------------------------
MALFORMED: dict[str, Callable[[redis.Redis, str], Any]] = {
    "stub left by a claim": lambda r, k: (r.delete(k),
                                           r.hset(k, mapping={"status": "claimed",
                                                              "claim_token": "x"})),
    "missing required fields": lambda r, k: r.hdel(k, "task_id", "reason"),
    "invalid JSON": lambda r, k: r.hset(k, "kwargs", "{not json"),
    "JSON of the wrong shape": lambda r, k: r.hset(k, "requeued_task_ids", '{"a": 1}'),
    "non-numeric number": lambda r, k: r.hset(k, "requeues", "three"),
    "non-numeric time": lambda r, k: r.hset(k, "last_failed", "nan"),
    "id of another entry": lambda r, k: r.hset(k, "id", "e0"),
    "text that is not UTF-8": lambda r, k: r.hset(k, "exc_message", b"caf\xe9"),
    "key of the wrong type": lambda r, k: (r.delete(k), r.rpush(k, "a", "b")),
}


@pytest.mark.parametrize("damage", MALFORMED.values(), ids=MALFORMED.keys())
def test_one_malformed_entry_is_reported_counted_and_skipped(
        dlq, settings, redis_client, caplog, damage):
    """A malformed entry among valid ones: get() returns it marked ``broken`` (not an
    exception), list_entries() skips it and says so, process() requeues the valid entries of
    the same call and sets the broken one aside (parked, counted as malformed, never claimed
    again), it is logged once however often it is met, stats() still answers, and size()
    equals what is listed plus what was skipped."""
    now = time.time()
    for i in range(3):
        dlq.add(entry(settings, f"e{i}", last_failed=now - 10 + i))
    damage(redis_client, dlq.keys.dlq_entry("e1"))
    caplog.set_level(logging.WARNING, logger="celery_warden.dlq")

    got = dlq.get("e1")
    assert got is not None
    assert got.id == "e1"
    assert got.broken
    assert not got.replayable
    page = dlq.list_entries()
    assert [e.id for e in page] == ["e2", "e0"]
    assert page.skipped == 1

    counts = dlq.process(max_items=10)
    assert (counts["requeued"], counts["malformed"], counts["failed"]) == (2, 1, 0)
    assert sorted(m.headers["id"] for m in broker_messages(redis_client, settings)) == [
        "e0-r1", "e2-r1"]
    assert dlq.process(max_items=10)["claimed"] == 0
    assert dlq.requeue("e1", force=True) is None
    assert len(broker_messages(redis_client, settings)) == 2

    page = dlq.list_entries()
    assert (list(page), page.skipped) == ([], 1)
    assert dlq.size() == len(page) + page.skipped == 1
    stats = dlq.stats()
    assert (stats["ready"], stats["claimed"], stats["malformed"]) == (0, 0, 1)
    reports = [r for r in caplog.records if "e1" in r.getMessage() and "malformed" in
               r.getMessage()]
    assert len(reports) == 1, [r.getMessage() for r in caplog.records]
    assert dlq.discard("e1") is True
    assert dlq.size() == 0


def test_a_stub_is_never_claimed_back_into_a_loop(dlq, settings, redis_client, caplog):
    """A ``status``/``claim_token`` stub (as older versions left behind) whose lease expired is
    set aside once; processing after that neither claims nor logs it again."""
    k = dlq.keys
    redis_client.hset(k.dlq_entry("stub"), mapping={"status": "pending", "claim_token": "x"})
    redis_client.zadd(k.dlq, {"stub": time.time()})
    redis_client.zadd(k.dlq_ready, {"stub": time.time()})
    caplog.set_level(logging.WARNING, logger="celery_warden.dlq")
    assert dlq.process()["malformed"] == 1
    for _ in range(3):
        assert dlq.process()["claimed"] == 0
    assert len([r for r in caplog.records if "stub" in r.getMessage()]) == 1
    assert dlq.get("stub").status == "parked"


# -- DLQEntry.from_hash --------------------------------------------------------------------------
def test_from_hash_reads_a_sound_entry_unchanged():
    """from_hash(to_hash(e)) is e, with no ``broken`` mark, and ``broken`` is never stored."""
    e = DLQEntry(id="e1", task_id="t1", reason="exception", name="t.add", args=[1],
                 kwargs={"a": [1, {"b": None}]}, priority=4, headers={"x": 1},
                 history=[{"attempt": 0}], first_failed=1.5, last_failed=2.5, failures=2,
                 requeues=1, requeued_task_ids=["e1-r1"], note="n")
    stored = e.to_hash()
    assert "broken" not in stored
    assert DLQEntry.from_hash(stored, "e1") == e
    assert DLQEntry.from_hash({**stored, "broken": "stored by someone"}, "e1").broken is None


@pytest.mark.parametrize("raw", [
    {},
    {"status": "claimed", "claim_token": "abc"},
    {"id": "e1", "task_id": "t", "reason": "x", "args": "[1", "kwargs": "null"},
    {"id": "e1", "task_id": "t", "reason": "x", "priority": "high", "failures": "1.5"},
    {"id": "e1", "task_id": "t", "reason": "x", "first_failed": "inf", "last_failed": "-"},
    {"id": "e1", "task_id": "t", "reason": "x", "headers": "[]", "history": "{}",
     "raw": "1", "args": '{"a": 1}', "kwargs": "[]"},
    {"id": "e1", "task_id": "t", "reason": "x", "args": "[" * 100_000},
    {"id": "[/]<script>", "task_id": "t", "reason": "x", "status": "password=hunter2"},
    {"id": "e1", "task_id": "t", "reason": "x", "name": "t.add", "args": '["caf\udce9"]',
     "kwargs": "{}"},
])
def test_from_hash_never_raises_and_marks_what_it_could_not_read(raw):
    """Whatever a hash holds, from_hash returns an entry under the key's id, marked ``broken``
    with a short reason that names the fields (no stored values quoted), and not replayable."""
    got = DLQEntry.from_hash(raw, "e1")
    assert got.id == "e1"
    assert got.broken
    assert len(got.broken) < 500
    assert "hunter2" not in got.broken and "<script>" not in got.broken
    assert not got.replayable
