"""Tasks lost between the Redis broker and a worker (:mod:`celery_warden.dlq.transit`).

The loss is made the way it happens: a real Warden-wired client publishes through kombu to the
Redis broker, then the message is taken off its list with ``RPOP`` — what kombu's ``BRPOP``
does — and nothing records it in the unacked hash, as when the worker's main process is
SIGKILLed between the two. The negative cases keep the message where a live fleet keeps it: in
its queue (also behind a deep backlog), or in kombu's unacked hash after a real ``basic_get``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from celery import Celery

from celery_warden.config import queue_name
from celery_warden.dlq.store import DeadLetterQueue
from celery_warden.dlq.transit import REASON, TransitWatch, candidates, in_broker
from celery_warden.keys import Keys
from celery_warden.record.recorder import Recorder
from celery_warden.settings import WardenSettings
from tests.support import client_app, wait_for

AFTER = 5.0


@pytest.fixture
def fleet(settings_factory) -> Iterator[tuple[WardenSettings, Celery]]:
    s = settings_factory(WARDEN_LOST_IN_TRANSIT_AFTER=AFTER)
    app = client_app(s, "transit-client")
    yield s, app
    app.close()


@pytest.fixture
def watch(fleet, recorders) -> Iterator[TransitWatch]:
    s, app = fleet
    r = Recorder(s)
    recorders.append(r)
    w = TransitWatch(app, s, DeadLetterQueue(s, app=app), r)
    yield w
    w.redis.close()


def _publish(app: Celery, s: WardenSettings, store: redis.Redis, **options: object) -> str:
    """Publish one task and wait until its SENT record is in the store."""
    result = app.send_task("transit.job", (1,), **options)
    keys = Keys(s.key_prefix)
    wait_for(lambda: store.hget(keys.task(result.id), "state") == "SENT", 10,
             message="SENT record")
    return str(result.id)


def _lanes(app: Celery, queue: str) -> list[str]:
    with app.connection_for_read() as conn:
        ch = conn.default_channel
        prefix = ch.global_keyprefix or ""
        return list(dict.fromkeys(prefix + ch._q_for_pri(queue, p) for p in ch.priority_steps))


def _take_off_queue(app: Celery, s: WardenSettings, broker: redis.Redis) -> bytes:
    """What a worker's BRPOP does, with nothing after it (its main process was killed)."""
    for lane in _lanes(app, queue_name(s, "default")):
        message = broker.rpop(lane)
        if message is not None:
            return bytes(message)  # type: ignore[arg-type]
    raise AssertionError("nothing to take off the queue")


def test_a_message_taken_and_never_recorded_is_filed_after_two_looks(
        fleet, watch, redis_url, redis_client):
    """Popped off its list and not in unacked: candidate after AFTER seconds, filed at the
    second look that finds it absent (parked: no body to requeue), record FAILURE, counted."""
    s, app = fleet
    task_id = _publish(app, s, redis_client)
    broker = redis.Redis.from_url(redis_url)
    _take_off_queue(app, s, broker)
    now = time.time()
    assert watch.look(now) == []  # too young: not a candidate yet
    assert watch.look(now + AFTER + 1) == []  # absent once: a suspect only
    assert watch.look(now + AFTER + 2) == [task_id]
    entry = DeadLetterQueue(s).get(task_id)
    assert entry is not None and entry.reason == REASON
    assert entry.status == "parked" and not entry.replayable
    assert entry.name == "transit.job" and entry.queue == queue_name(s, "default")
    assert "cannot requeue" in (entry.exc_message or "")
    watch.recorder.flush()
    keys = Keys(s.key_prefix)
    rec = redis_client.hgetall(keys.task(task_id))
    assert rec["state"] == "FAILURE" and rec["exc_type"] == "LostInTransit"
    assert rec["dlq_reason"] == REASON
    assert int(redis_client.hget(keys.dlq_stats, f"reason:{REASON}") or 0) == 1
    assert watch.look(now + AFTER + 3) == []  # filed once: no longer SENT
    broker.close()


def test_a_message_still_in_its_queue_is_never_filed(fleet, watch, redis_client):
    """Waiting in its queue (no worker consumes it): found there at every look."""
    s, app = fleet
    _publish(app, s, redis_client)
    now = time.time() + AFTER + 1
    for k in range(3):
        assert watch.look(now + k) == []
    assert DeadLetterQueue(s).size() == 0


def test_a_message_in_kombus_unacked_hash_is_never_filed(fleet, watch, redis_client):
    """Taken by a consumer that has not acknowledged it (a busy worker's reserved task, an
    ETA task held by a worker): kombu keeps it in the unacked hash, where the look finds it."""
    s, app = fleet
    task_id = _publish(app, s, redis_client)
    with app.connection_for_read() as conn:
        message = conn.default_channel.basic_get(queue_name(s, "default"), no_ack=False)
        assert message is not None and message.headers["id"] == task_id
        now = time.time() + AFTER + 1
        for k in range(3):
            assert watch.look(now + k) == []
        message.ack()


def test_a_queue_deeper_than_the_budget_leaves_its_candidates_undecided(fleet, redis_url,
                                                                        redis_client):
    """A lost task behind a backlog larger than the scan budget is neither found nor filed:
    the queue is not read, and its candidates stay undecided until it drains."""
    s, app = fleet
    lost = _publish(app, s, redis_client)
    broker = redis.Redis.from_url(redis_url)
    _take_off_queue(app, s, broker)
    for i in range(5):
        app.send_task("transit.job", (i,))
    found = candidates(redis_client, Keys(s.key_prefix), time.time() + AFTER)
    assert lost in {c.task_id for c in found}
    present, undecided = in_broker(app, found, budget=3)
    assert lost in undecided and lost not in present
    present, undecided = in_broker(app, found, budget=100)
    assert lost not in present and lost not in undecided
    broker.close()


def test_an_eta_task_is_not_a_candidate_before_its_eta(fleet, redis_client):
    """A task published with an ETA waits for it: the time it is judged by is its ETA."""
    s, app = fleet
    task_id = _publish(app, s, redis_client, countdown=60)
    keys = Keys(s.key_prefix)
    assert task_id not in {c.task_id for c in candidates(redis_client, keys,
                                                         time.time() + AFTER)}
    assert task_id in {c.task_id for c in candidates(redis_client, keys, time.time() + 61)}


def test_only_the_lease_holder_looks(fleet, recorders):
    """Two workers' watches: one holds the lease, the other does not look."""
    s, app = fleet
    made = []
    for _ in range(2):
        r = Recorder(s)
        recorders.append(r)
        made.append(TransitWatch(app, s, DeadLetterQueue(s, app=app), r))
    assert made[0].hold_lease() and not made[1].hold_lease()
    made[0].release()
    assert made[1].hold_lease()
    for w in made:
        w.redis.close()


def test_tasks_purged_through_warden_are_closed_as_revoked_not_filed(fleet, watch,
                                                                      redis_client):
    """A purge through Warden's API is remembered: the purged tasks (records still SENT,
    messages gone) are closed as REVOKED at the next look instead of being filed as lost."""
    from celery_warden import CeleryMonitor
    from celery_warden.serve import control

    s, app = fleet
    task_id = _publish(app, s, redis_client)
    monitor = CeleryMonitor(s, app=app)
    assert control.purge(monitor, queue_name(s, "default")) == 1
    monitor.redis.close()
    now = time.time() + AFTER + 1
    for k in range(3):
        assert watch.look(now + k) == []
    assert DeadLetterQueue(s).size() == 0
    watch.recorder.flush()
    rec = redis_client.hgetall(Keys(s.key_prefix).task(task_id))
    assert rec["state"] == "REVOKED" and "purged" in rec["reason"]
