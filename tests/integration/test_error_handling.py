"""A task that fails is never silently lost: it succeeds on retry or lands in the DLQ.

Real ``celery worker`` processes running ``tests/apps/errors.py`` (Warden base classes), real
Redis; every scenario of the DLQ issue that needs a worker.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
import redis
from kombu import Connection, Exchange, Producer

from celery_warden import CeleryMonitor, DeadLetterQueue, celery_config
from celery_warden.settings import WardenSettings
from tests.conftest import make_settings
from tests.support import WorkerProcess, wait_for
from tests.support import client_app as client

APP = "tests.apps.errors"


def dlq_entry(dlq: DeadLetterQueue, task_id: str, timeout: float = 30.0):
    return wait_for(lambda: dlq.get(task_id), timeout, 0.2, f"DLQ entry for {task_id}")


def final_state(monitor: CeleryMonitor, task_id: str, timeout: float = 30.0) -> dict:
    def done():
        st = monitor.get_task_status(task_id)
        return st if st["state"] in ("SUCCESS", "FAILURE", "REVOKED", "REJECTED") else None

    return wait_for(done, timeout, 0.2, f"final state of {task_id}")


def test_retries_exhausted_give_one_entry_with_the_full_history(settings, workers):
    """3 retries with deterministic backoff → one DLQ entry (reason max_retries) whose history
    holds each attempt's exception and the delay chosen: 0.2, 0.4, 0.8 s (base 0.2, factor 2)."""
    workers.append(WorkerProcess(settings, app=APP).start())
    app = client(settings)
    dlq = DeadLetterQueue(settings, app=app)
    res = app.send_task("errors.unreachable", ("db",))
    entry = dlq_entry(dlq, res.id)
    assert entry.reason == "max_retries"
    assert entry.exc_type == "ConnectionError" and entry.exc_message == "db refused the connection"
    assert [h["delay"] for h in entry.history] == [0.2, 0.4, 0.8]
    assert [h["attempt"] for h in entry.history] == [0, 1, 2]
    assert all(h["exc_type"] == "ConnectionError" for h in entry.history)
    assert entry.args == ["db"] and entry.kwargs == {}
    assert entry.name == "errors.unreachable" and entry.queue == f"{settings.queue_prefix}default"
    assert entry.priority == 5 and entry.status == "pending" and entry.traceback
    time.sleep(1.0)
    assert dlq.size() == 1, "exactly one entry for one task"
    monitor = CeleryMonitor(settings, app=app)
    status = final_state(monitor, res.id)
    assert status["state"] == "FAILURE" and status["retries"] == 3
    assert [h["delay"] for h in status["history"]] == [0.2, 0.4, 0.8]
    assert status["dlq_entry"] == res.id and status["dlq_reason"] == "max_retries"


def test_jittered_backoff_stays_inside_its_bounds(settings, workers):
    """Full jitter: each delay is within [0, min(cap, base * 2**n)] (base 0.2, cap 0.6)."""
    workers.append(WorkerProcess(settings, app=APP).start())
    app = client(settings)
    dlq = DeadLetterQueue(settings, app=app)
    results = [app.send_task("errors.jittered") for _ in range(5)]
    delays = []
    for r in results:
        entry = dlq_entry(dlq, r.id)
        assert len(entry.history) == 4
        for h in entry.history:
            assert 0.0 <= h["delay"] <= min(0.6, 0.2 * 2 ** h["attempt"])
            delays.append(h["delay"])
    assert len(set(delays)) > 1, "jitter spreads the delays"


def test_non_retryable_exception_goes_straight_to_the_dlq(settings, workers):
    """A KeyError is not transient: no retry, reason 'exception'; a bug in a BaseTask too."""
    workers.append(WorkerProcess(settings, app=APP).start())
    app = client(settings)
    dlq = DeadLetterQueue(settings, app=app)
    a = app.send_task("errors.not_retryable")
    b = app.send_task("errors.bug", (7,))
    ea, eb = dlq_entry(dlq, a.id), dlq_entry(dlq, b.id)
    assert (ea.reason, ea.exc_type, ea.history) == ("exception", "KeyError", [])
    assert (eb.reason, eb.exc_message, eb.args) == ("exception", "order 7 has no line items", [7])


def test_soft_and_hard_time_limits_land_with_their_reason(settings, workers):
    """Soft limit (exception in the task) → soft_time_limit; hard limit (child killed, seen in
    the main process) → time_limit, counted once; the worker keeps serving."""
    workers.append(WorkerProcess(settings, app=APP).start())
    app = client(settings)
    dlq = DeadLetterQueue(settings, app=app)
    soft = app.send_task("errors.soft_limit")
    hard = app.send_task("errors.hard_limit")
    assert dlq_entry(dlq, soft.id).reason == "soft_time_limit"
    entry = dlq_entry(dlq, hard.id)
    assert entry.reason == "time_limit" and entry.exc_type == "TimeLimitExceeded"
    assert entry.name == "errors.hard_limit"
    assert app.send_task("errors.ok", (3,)).get(timeout=30) == 3
    monitor = CeleryMonitor(settings, app=app)
    time.sleep(1.0)
    assert monitor.get_performance_stats("errors.hard_limit", "10m")["failure"] == 1
    assert dlq.get(hard.id).failures == 1


def test_long_running_task_progress_is_visible_while_running(settings, workers):
    """report_progress(done, total, message) shows in get_task_status before the task ends."""
    workers.append(WorkerProcess(settings, app=APP).start())
    app = client(settings)
    monitor = CeleryMonitor(settings, app=app)
    res = app.send_task("errors.progress", (6, 0.5))

    def midway():
        st = monitor.get_task_status(res.id)
        p = st.get("progress")
        return st if st["state"] == "STARTED" and p and 0 < p["done"] < 6 else None

    st = wait_for(midway, 20, 0.1, "progress while running")
    assert st["progress"]["total"] == 6 and st["progress"]["message"].startswith("step ")
    assert res.get(timeout=30) == 6
    assert final_state(monitor, res.id)["progress"]["done"] == 6


def test_killed_pool_child_task_is_redelivered_and_completes(settings, workers):
    """SIGKILL of the pool child mid-task: acks_late + reject_on_worker_lost redeliver it, it
    succeeds, and it is not in the DLQ."""
    workers.append(WorkerProcess(settings, app=APP).start())
    app = client(settings)
    tag = uuid.uuid4().hex
    res = app.send_task("errors.kill_once", (tag,))
    assert res.get(timeout=60) == tag
    monitor = CeleryMonitor(settings, app=app)
    st = final_state(monitor, res.id)
    assert st["state"] == "SUCCESS" and st["deliveries"] == 2
    assert DeadLetterQueue(settings, app=app).get(res.id) is None


def test_poison_pill_is_dead_lettered_after_the_delivery_limit(settings, workers):
    """A task that kills its child every time runs WARDEN_MAX_DELIVERIES (3) times, then goes
    to the DLQ as a poison pill instead of looping; other tasks keep being served."""
    workers.append(WorkerProcess(settings, app=APP).start())
    app = client(settings)
    dlq = DeadLetterQueue(settings, app=app)
    pill = app.send_task("errors.suicide")
    entry = dlq_entry(dlq, pill.id, 60)
    assert entry.reason == "poison_pill" and "delivered 4 times" in entry.exc_message
    assert app.send_task("errors.ok", (5,)).get(timeout=30) == 5
    monitor = CeleryMonitor(settings, app=app)
    st = final_state(monitor, pill.id)
    assert st["state"] == "FAILURE" and st["reason"] == "poison pill"
    time.sleep(2.0)
    assert dlq.get(pill.id).failures == 1, "no further deliveries after dead-lettering"


def test_poison_pill_survives_the_whole_worker_being_killed(redis_url, workers):
    """The whole worker SIGKILLed by its task: the message comes back through the broker
    (visibility timeout) to a new worker, deliveries are still counted, and it ends in the DLQ."""
    s = make_settings(redis_url, WARDEN_VISIBILITY_TIMEOUT=2, WARDEN_MAX_DELIVERIES=2)
    try:
        app = client(s)
        dlq = DeadLetterQueue(s, app=app)
        pill = app.send_task("errors.kill_worker")
        for _ in range(4):  # deliveries 1 and 2 kill their worker; the 3rd is dead-lettered
            w = WorkerProcess(s, app=APP, concurrency=1).start(wait=False)
            workers.append(w)
            wait_for(lambda w=w: w.process.poll() is not None or dlq.get(pill.id), 60, 0.2,
                     "the worker to die or the pill to be dead-lettered")
            if dlq.get(pill.id):
                break
            w.kill()  # reap what is left of it (pool children)
            time.sleep(s.visibility_timeout + 0.5)  # the message becomes visible again
        entry = dlq_entry(dlq, pill.id, 10)
        assert entry.reason == "poison_pill" and "delivered 3 times" in entry.exc_message
        assert w.process.poll() is None, "the worker that caught the pill is alive"
        w.wait_ready()
        assert app.send_task("errors.ok", (1,)).get(timeout=30) == 1
    finally:
        from tests.support import delete_prefix

        delete_prefix(redis.Redis.from_url(redis_url), f"{s.key_prefix}:", s.broker_key_prefix)


def _publish_raw(settings: WardenSettings, body: bytes, headers: dict, content_type: str) -> None:
    queue = f"{settings.queue_prefix}default"
    conf = celery_config(settings)
    with Connection(conf["broker_url"],
                    transport_options=conf.get("broker_transport_options", {})) as conn:
        Producer(conn.default_channel).publish(
            body, exchange=Exchange(queue, type="direct"), routing_key=queue,
            headers=headers, content_type=content_type, content_encoding="utf-8",
            serializer=None,
        )


def test_unknown_task_and_undecodable_message_are_kept_and_the_worker_lives(settings, workers):
    """An unknown task name and a body that is not JSON both become DLQ entries with the raw
    message kept verbatim; the worker stays up and serves the next task."""
    w = WorkerProcess(settings, app=APP).start()
    workers.append(w)
    app = client(settings)
    dlq = DeadLetterQueue(settings, app=app)
    unknown = app.send_task("errors.no_such_task", (1, 2), {"k": "v"})
    entry = dlq_entry(dlq, unknown.id)
    assert entry.reason == "unknown_task" and entry.name == "errors.no_such_task"
    assert entry.args == [1, 2] and entry.kwargs == {"k": "v"}
    assert entry.raw and entry.raw["content_type"] == "application/json"

    bad_id = str(uuid.uuid4())
    body = b'{"this is": not json'
    _publish_raw(settings, body, {"id": bad_id, "task": "errors.ok", "lang": "py",
                                  "argsrepr": "", "kwargsrepr": ""}, "application/json")
    entry = dlq_entry(dlq, bad_id)
    assert entry.reason in ("undecodable", "invalid_message")
    assert entry.raw["body"] == body.decode()
    assert entry.status == "parked", "not replayable without a decodable body"
    assert app.send_task("errors.ok", (9,)).get(timeout=30) == 9
    assert w.process.poll() is None


def test_pickle_message_is_refused_and_kept(settings, workers):
    """JSON only: a pickle body is never deserialised; it is kept in the DLQ as raw bytes."""
    w = WorkerProcess(settings, app=APP).start()
    workers.append(w)
    app = client(settings)
    dlq = DeadLetterQueue(settings, app=app)
    bad_id = str(uuid.uuid4())
    import pickle

    body = pickle.dumps(((1,), {}, {}))
    _publish_raw(settings, body, {"id": bad_id, "task": "errors.ok", "lang": "py"},
                 "application/x-python-serialize")
    entry = dlq_entry(dlq, bad_id)
    assert entry.reason in ("undecodable", "invalid_message")
    assert entry.raw["body_encoding"] == "base64"
    assert app.send_task("errors.ok", (2,)).get(timeout=30) == 2


def test_requeued_entries_succeed_once_the_cause_is_fixed(settings, workers):
    """Failures land in the DLQ; after the dependency is fixed, process() requeues them (new
    task ids linked to the entries) and every requeued task succeeds exactly once."""
    workers.append(WorkerProcess(settings, app=APP).start())
    app = client(settings)
    dlq = DeadLetterQueue(settings, app=app)
    results = [app.send_task("errors.fixable", (i,)) for i in range(20)]
    wait_for(lambda: dlq.size() == 20, 30, 0.2, "20 entries")
    r = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    r.set(f"{settings.key_prefix}:test:fixed", "1")
    counts = dlq.process(max_items=100, requeue=True)
    assert counts["requeued"] == 20
    assert dlq.size() == 0
    monitor = CeleryMonitor(settings, app=app)
    for res in results:
        entry = dlq.get(res.id)
        assert entry.status == "requeued" and entry.requeued_task_ids == [f"{res.id}-r1"]
        assert final_state(monitor, f"{res.id}-r1", 60)["state"] == "SUCCESS"
    assert sorted(int(r.get(f"{settings.key_prefix}:test:fixable:{i}")) for i in range(20)) \
        == [1] * 20


def test_failures_are_grouped_by_cause(settings, workers):
    """300 failures from 3 distinct causes (messages differ only by numbers) → 3 groups with
    exact counts of 100 each."""
    workers.append(WorkerProcess(settings, app=APP).start())
    app = client(settings)
    results = [app.send_task("errors.plain_fail", ("abc"[i % 3],)) for i in range(300)]
    for res in results:
        res.get(timeout=60, propagate=False)
    monitor = CeleryMonitor(settings, app=app)

    def grouped():
        groups = monitor.get_error_groups(limit=10)
        return groups if sum(g["count"] for g in groups) >= 300 else None

    groups = wait_for(grouped, 20, 0.2, "300 grouped failures")
    time.sleep(1.0)
    groups = monitor.get_error_groups(limit=10, window="10m")
    assert sorted(g["count"] for g in groups) == [100, 100, 100]
    assert sorted(g["exc_type"] for g in groups) == ["KeyError", "RuntimeError", "ValueError"]
    assert all(g["task_names"] == {"errors.plain_fail": 100} for g in groups)
    assert all(g["count_in_window"] == 100 for g in groups)
    assert all(len(g["recent_task_ids"]) == 20 for g in groups)
    recent = monitor.get_recent_errors(2)
    assert len(recent) == 2 and recent[0]["count"] == 100


@pytest.mark.rabbitmq
def test_rabbitmq_rejected_and_expired_messages_reach_the_dlq(redis_url, rabbitmq_url, workers):
    """On RabbitMQ with WARDEN_RABBITMQ_QUEUE_ARGUMENTS=all (TTL and dead-letter exchange as
    queue arguments, no policy), a message rejected without requeue and one expired by the
    queue's message TTL are dead-lettered by the broker and drained into Warden's DLQ store.
    (The policy path: tests/integration/test_rabbitmq_adoption.py.)"""
    from celery_warden.dlq.broker import declare_dead_letter_queue, drain_broker_dead_letters

    s = make_settings(redis_url, CELERY_BROKER_URL=rabbitmq_url, WARDEN_QUEUE_MESSAGE_TTL=1,
                      WARDEN_RABBITMQ_QUEUE_ARGUMENTS="all")
    app = client(s)
    dlq = DeadLetterQueue(s, app=app)
    try:
        declare_dead_letter_queue(app, s)
        expired = app.send_task("errors.ok", (1,), queue=f"{s.queue_prefix}low_priority")
        time.sleep(2.5)  # no consumer on low_priority: the 1 s TTL expires it
        queue_name = f"{s.queue_prefix}default"
        rejected_id = str(uuid.uuid4())
        with Connection(rabbitmq_url) as conn:
            q = app.amqp.queues[queue_name](conn.default_channel)
            q.declare()
            Producer(conn.default_channel).publish(
                json.dumps([[2], {}, {}]), exchange=queue_name, routing_key=queue_name,
                headers={"id": rejected_id, "task": "errors.ok"},
                content_type="application/json", content_encoding="utf-8", serializer=None,
            )
            msg = wait_for(lambda: q.get(no_ack=False), 10, 0.1, "message to reject")
            msg.reject(requeue=False)
        moved = wait_for(lambda: drain_broker_dead_letters(app, s, dlq) or None, 10, 0.5,
                         "dead letters drained")
        if moved < 2:
            moved += drain_broker_dead_letters(app, s, dlq)
        assert moved == 2
        e1, e2 = dlq.get(expired.id), dlq.get(rejected_id)
        assert e1.reason == e2.reason == "broker_dead_letter"
        assert "expired" in e1.exc_message and "rejected" in e2.exc_message
        assert e1.name == "errors.ok" and e1.args == [1]
        assert e1.queue == f"{s.queue_prefix}low_priority"
        # The task's own record is closed too: it never reached a worker (was stuck at SENT).
        monitor = CeleryMonitor(s, app=app)
        status = wait_for(lambda: (monitor.get_task_status(expired.id)["state"] == "REJECTED"
                                   and monitor.get_task_status(expired.id)), 10, 0.2,
                          "expired task's record closed")
        assert status["dlq_entry"] == expired.id
        assert status["dlq_reason"] == "broker_dead_letter"
        assert e2.args == [2] and e2.queue == queue_name
    finally:
        with Connection(rabbitmq_url) as conn:
            ch = conn.default_channel
            for q in [*app.conf.task_queues]:
                q(ch).delete()
            from celery_warden.config import dead_letter_queue

            dead_letter_queue(s)(ch).delete()
        from tests.support import delete_prefix

        delete_prefix(redis.Redis.from_url(redis_url), f"{s.key_prefix}:", s.broker_key_prefix)

