"""Records survive a killed process: the whole worker SIGKILLed mid-run, twice; pool children
SIGKILLed while their worker runs on.

Ground truth is kept outside Warden: every execution of ``fleet.record_order`` appends its
label to a Redis list as the body's last step, and Celery's results say every task succeeded.
What the pool children had buffered when they were killed comes back from their spool files at
the next worker start on this host, or — a child killed while its worker runs on — from the
worker main's reaper within a second or two.
"""

from __future__ import annotations

import os
import signal
import time

import redis

from celery_warden import CeleryMonitor
from celery_warden.keys import Keys
from celery_warden.read.totals import read_totals
from tests.support import WorkerProcess, client_app, wait_for

TASKS = 600
#: Pool-child kills in the second test, spread over its run.
CHILD_KILLS = 4


def successes(client: redis.Redis, keys: Keys) -> int:
    """``fleet.record_order``'s cumulative success count, as Prometheus would read it."""
    got, _ = read_totals(client, keys)
    return sum(c.value for c in got if c.event == "succeeded" and c.name == "fleet.record_order")


def kill_group(worker: WorkerProcess) -> None:
    """SIGKILL the worker's whole process group (it runs in a session of its own)."""
    assert worker.process is not None
    os.killpg(worker.pid, signal.SIGKILL)
    worker.process.wait(10)
    worker.kill()  # reap, close the log


def test_whole_worker_killed_twice_mid_run_counts_stay_exact(settings_factory, workers,
                                                             tmp_path, redis_client):
    settings = settings_factory(WARDEN_SPOOL_DIR=str(tmp_path / "spool"),
                                WARDEN_VISIBILITY_TIMEOUT=8, WARDEN_FLUSH_INTERVAL=1.0,
                                # Killed twice, a message may be delivered 3+ times: not a
                                # poison pill here.
                                WARDEN_MAX_DELIVERIES=10)
    truth = f"{settings.key_prefix}:order"
    app = client_app(settings)
    results = [app.send_task("fleet.record_order", (f"t{i}",)) for i in range(TASKS)]

    def executed() -> int:
        return int(redis_client.llen(truth))

    for stop_at in (TASKS // 4, TASKS // 2):
        w = WorkerProcess(settings).start()
        workers.append(w)
        wait_for(lambda n=stop_at: executed() >= n, 60, 0.02, f"{stop_at} tasks executed")
        kill_group(w)
        time.sleep(settings.visibility_timeout + 0.5)  # unacknowledged messages come back
    w = WorkerProcess(settings).start()
    workers.append(w)

    def settled() -> bool:  # every result in, or no execution for 15 s
        before = executed()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if all(r.ready() for r in results):
                return True
            time.sleep(0.5)
        return executed() == before

    wait_for(settled, 240, 0.1, "the queue to drain")
    done = [r for r in results if r.ready()]
    # kombu's Redis transport can lose a message SIGKILLed between its BRPOP and its move to
    # the unacked hash: the broker's loss, not Warden's — allowed for one or two, no more.
    assert len(done) >= TASKS - 2, f"{TASKS - len(done)} tasks never completed"
    assert all(r.successful() for r in done)
    labels = list(redis_client.lrange(truth, 0, -1))
    assert {r.result for r in done} <= set(labels)
    monitor = CeleryMonitor(settings, app=app)
    keys = Keys(settings.key_prefix)

    def succeeded() -> int:
        return successes(redis_client, keys)

    # Every completed task's success is counted (at least once), and no success is counted
    # twice: an execution killed between its body's last step and its postrun (Celery stores
    # the result in between) ran without a success, so the truth may exceed the count, never
    # the reverse.
    wait_for(lambda: succeeded() >= len(done), 30, 0.2,
             f"{len(done)} successes counted (spools replayed)")
    time.sleep(2.5)  # any double count would arrive within a couple of flush intervals
    count = succeeded()
    assert len(done) <= count <= len(labels), (len(done), count, len(labels))
    stats = monitor.get_performance_stats("fleet.record_order", "1h")
    assert stats["success"] == count
    states = {monitor.get_task_status(r.id)["state"] for r in done}
    assert states == {"SUCCESS"}, "no task left STARTED (or without a record)"
    assert "STARTED" not in {monitor.get_task_status(r.id)["state"] for r in results}
    w.stop()
    left = [p.name for p in (tmp_path / "spool").rglob("*") if p.is_file()]
    assert left == [], "replayed spools and a clean stop leave no files"


def test_pool_children_killed_mid_run_are_replayed_without_a_worker_restart(
        settings_factory, workers, tmp_path, redis_client):
    # The longest flush interval: each killed child takes up to 5 s of finished tasks with it.
    settings = settings_factory(WARDEN_SPOOL_DIR=str(tmp_path / "spool"),
                                WARDEN_FLUSH_INTERVAL=5.0, WARDEN_MAX_DELIVERIES=10)
    truth = f"{settings.key_prefix}:order"
    app = client_app(settings)
    results = [app.send_task("fleet.record_order", (f"c{i}",)) for i in range(TASKS)]
    w = WorkerProcess(settings).start()
    workers.append(w)
    main_pid = w.pid

    def executed() -> int:
        return int(redis_client.llen(truth))

    killed: list[int] = []
    for k in range(CHILD_KILLS):
        wait_for(lambda n=TASKS * (k + 1) // (CHILD_KILLS + 1): executed() >= n, 120, 0.01,
                 "tasks executed")
        children = w.children()
        assert children, "the pool has children"
        os.kill(children[k % len(children)], signal.SIGKILL)
        killed.append(children[k % len(children)])
        wait_for(lambda: len(set(w.children()) - set(killed)) >= 2, 30, 0.05,
                 "the pool to replace the killed child")
    wait_for(lambda: all(r.ready() for r in results), 180, 0.2, "every task to complete")
    assert all(r.successful() for r in results)
    labels = list(redis_client.lrange(truth, 0, -1))
    assert {r.result for r in results} == {f"c{i}" for i in range(TASKS)}
    monitor = CeleryMonitor(settings, app=app)
    keys = Keys(settings.key_prefix)

    def succeeded() -> int:
        return successes(redis_client, keys)

    try:
        wait_for(lambda: succeeded() >= TASKS, 30, 0.2, f"{TASKS} successes counted")
    except AssertionError as exc:  # what was counted, and what the reaper said, to diagnose
        replays = [line for line in w.log().splitlines() if "replay" in line or "reap" in line]
        raise AssertionError(f"{exc}: {succeeded()} counted, {len(labels)} executed, "
                             f"killed {killed}; reaper: {replays[-10:]}") from None
    time.sleep(6.0)  # past a flush interval: any double count would have arrived
    # The worker never restarted: what came back came from its reaper.
    assert w.process is not None and w.process.poll() is None and w.pid == main_pid
    assert "replayed the spools of" in w.log()
    count = succeeded()
    # A child killed after its postrun but before the pool heard of the result ran the task
    # to success once more (at-least-once): never fewer successes than tasks, never more
    # than executions.
    assert TASKS <= count <= len(labels), (TASKS, count, len(labels))
    assert monitor.get_performance_stats("fleet.record_order", "1h")["success"] == count
    states = [monitor.get_task_status(r.id)["state"] for r in results]
    assert states.count("SUCCESS") == TASKS, {s: states.count(s) for s in set(states)}
    w.stop()
    left = [p.name for p in (tmp_path / "spool").rglob("*") if p.is_file()]
    assert left == [], "replayed spools and a clean stop leave no files"


def test_success_stored_before_the_child_was_killed_is_recorded_once(settings_factory, workers,
                                                                     tmp_path, redis_client):
    """The child dies in ``on_success``: the result is stored, its ``task_postrun`` never runs.
    Celery's main process acknowledges the message without a signal; Warden's main process
    records the success (and the start) once, after its reaper showed no spool held it."""
    settings = settings_factory(WARDEN_SPOOL_DIR=str(tmp_path / "spool"),
                                WARDEN_FLUSH_INTERVAL=1.0)
    app = client_app(settings)
    w = WorkerProcess(settings).start()
    workers.append(w)
    results = [app.send_task("fleet.dies_after_success", (i,)) for i in range(3)]
    results += [app.send_task("fleet.noop") for _ in range(10)]
    wait_for(lambda: all(r.ready() for r in results), 90, 0.2, "every task to complete")
    assert all(r.successful() for r in results)
    assert "succeeded before the worker was lost" in w.log()
    keys = Keys(settings.key_prefix)

    def counted(event: str) -> int:
        got, _ = read_totals(redis_client, keys)
        return sum(c.value for c in got if c.event == event
                   and c.name == "fleet.dies_after_success")

    wait_for(lambda: counted("succeeded") >= 3, 30, 0.2, "3 successes counted")
    time.sleep(3.0)  # a double count (child spool and main both) would land by now
    assert counted("succeeded") == 3
    assert counted("started") == 3
    # Each delivery's receipt is counted with its outcome, which the main process recorded
    # here (record/lost.py), its pool child having died before its end.
    assert counted("received") == 3
    monitor = CeleryMonitor(settings, app=app)
    assert {monitor.get_task_status(r.id)["state"] for r in results[:3]} == {"SUCCESS"}
    assert monitor.get_performance_stats("fleet.dies_after_success", "1h")["success"] == 3


def test_a_duplicate_lost_after_an_earlier_delivery_succeeded_is_not_counted_again(
        settings_factory, workers, tmp_path, redis_client):
    """At-least-once brokers deliver one task id more than once (a retry re-published again
    after a redelivery). When such a duplicate's pool child dies, Celery finds the earlier
    delivery's SUCCESS in the result backend and acknowledges the duplicate as a success; the
    success was counted where it ran, so the lost duplicate closes its record without a second
    count (before: counted twice — the chaos suite's unexplained surplus on RabbitMQ)."""
    settings = settings_factory(WARDEN_SPOOL_DIR=str(tmp_path / "spool"))
    app = client_app(settings)
    w = WorkerProcess(settings).start()
    workers.append(w)
    keys = Keys(settings.key_prefix)

    def counted(event: str) -> int:
        got, _ = read_totals(redis_client, keys)
        return sum(c.value for c in got if c.event == event
                   and c.name == "fleet.dies_when_retried")

    first = app.send_task("fleet.dies_when_retried", (1,))
    assert first.get(timeout=60) == 1
    wait_for(lambda: counted("succeeded") == 1, 30, 0.2, "the first delivery counted")
    app.send_task("fleet.dies_when_retried", (1,), task_id=first.id, retries=1)
    wait_for(lambda: "succeeded before the worker was lost" in w.log(), 60, 0.2,
             "Celery's lost-job path for the duplicate")
    time.sleep(3.0)  # the reaper's settle (within ~1 s) has run by now
    assert counted("succeeded") == 1
    assert counted("received") == 2  # both deliveries: the first's child, the duplicate's main
    record = redis_client.hgetall(keys.task(first.id))
    assert record["state"] == "SUCCESS" and record["retries"] == "1"
    assert "already succeeded" in record["reason"]
