"""The chaos driver: submit a task mix, inject faults on a schedule, reconcile, print a table.

``run(broker, tasks, ...)`` is the reusable entry point (``make chaos`` runs 10,000 tasks per
broker through ``python -m tests.chaos``; ``tests/integration/test_chaos.py`` a few hundred).
Faults are bounded in count and time and hit only what the run started, by pid.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from celery_warden.config import queue_name
from celery_warden.keys import Keys
from tests.chaos import truth
from tests.chaos.fleet import ChaosFleet
from tests.chaos.reconcile import FINAL, Report, entries, reconcile, records, settled
from tests.chaos.workload import Submission, Submitter, plan
from tests.support import ROOT, client_app, settings_env

Say = Callable[[str], None]
#: Seconds without progress after which waiting for final states stops.
STABLE = 45.0


@dataclass
class Schedule:
    """Which faults, how many (spread evenly over the submission window)."""

    child_kill_every: float = 4.0
    worker_kills: int = 2
    long_sigterms: int = 1
    store_restarts: int = 1
    broker_cuts: int = 1  # RabbitMQ runs only
    poison: bool = True
    dlq_processors: bool = True


def run(broker: str, tasks: int, rate: float = 150.0, schedule: Schedule | None = None,
        settle_timeout: float = 300.0, say: Say = print) -> Report:
    schedule = schedule or Schedule()
    fleet = ChaosFleet(broker)
    try:
        settings = fleet.start()
        say(f"[chaos] {broker}: redis-server pid {fleet.store.pid} on {fleet.store.url}, "
            f"workers {[w.pid for w in fleet.workers]}")
        app = client_app(settings, "chaos-client")
        submitter = Submitter(app)
        truth_client = redis.Redis.from_url(fleet.truth_url, decode_responses=True)
        work = plan(tasks)
        window = max(10.0, len(work) / rate)
        stop = threading.Event()
        injector = threading.Thread(target=_inject, daemon=True, args=(
            fleet, schedule, window, stop, submitter, settings, say))
        injector.start()
        started = time.monotonic()
        for n, s in enumerate(work):
            submitter.submit(s)
            ahead = started + (n + 1) / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        say(f"[chaos] submitted {len(submitter.sent)} in {time.monotonic() - started:.0f}s")
        injector.join()
        stop.set()
        keys = Keys(settings.key_prefix)
        store = redis.Redis.from_url(settings.redis_url, decode_responses=True)
        _settle(store, keys, submitter.sent, settle_timeout, say)
        if broker == "rabbitmq":  # expired messages were dead-lettered by the broker itself
            from celery_warden import DeadLetterQueue
            from celery_warden.dlq.broker import drain_broker_dead_letters

            time.sleep(1)
            moved = drain_broker_dead_letters(app, settings, DeadLetterQueue(settings, app=app))
            say(f"[chaos] drained {moved} RabbitMQ dead letters into the DLQ")
            _settle(store, keys, submitter.sent, 10, say)
        killed_at = None
        if schedule.dlq_processors:
            killed_at = _dlq_phase(fleet, settings_env(settings), truth_client, store, keys,
                                   submitter.sent, say)
            _settle(store, keys, submitter.sent, settle_timeout, say)
        say(f"[chaos] left in broker queues: {_depths(app, settings)}")
        report = reconcile(broker, settings, submitter.sent, fleet.log, truth_client, killed_at)
        report.publish_retries = submitter.publish_retries
        _counters(store, keys, report, say)
        store.close()
        truth_client.close()
        app.close()
        return report
    finally:
        fleet.stop()


def _inject(fleet: ChaosFleet, sch: Schedule, window: float, stop: threading.Event,
            submitter: Submitter, settings: object, say: Say) -> None:
    """Run the fault schedule over the submission window (one fault at a time)."""
    rng = random.Random(7)
    events: list[tuple[float, str]] = []
    kinds = (("worker", sch.worker_kills), ("sigterm", sch.long_sigterms),
             ("store", sch.store_restarts),
             ("cut", sch.broker_cuts if fleet.broker == "rabbitmq" else 0))
    for j, (kind, n) in enumerate(kinds):  # staggered: two faults never land together
        events += [(window * ((k + 1) / (n + 1) + (j - 1.5) * 0.09), kind) for k in range(n)]
    if sch.poison:
        events.append((window * 0.3, "poison"))
    t = sch.child_kill_every
    while t < window:
        events.append((t, "child"))
        t += sch.child_kill_every
    begin = time.monotonic()
    for at, kind in sorted(events):
        delay = begin + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        try:
            _fault(fleet, kind, rng, submitter, say)
        except Exception as exc:  # a fault that could not be injected is reported, not hidden
            say(f"[chaos] fault {kind} failed: {type(exc).__name__}: {exc}")
            fleet.log.count(f"{kind} (failed to inject)")


def _fault(fleet: ChaosFleet, kind: str, rng: random.Random, submitter: Submitter,
           say: Say) -> None:
    assert fleet.settings is not None
    if kind == "child":
        fleet.kill_child(rng)
    elif kind == "worker":
        index = rng.randrange(len(fleet.workers))
        say(f"[chaos] SIGKILL worker {fleet.workers[index].pid}")
        fleet.kill_worker(index)
    elif kind == "store":
        say("[chaos] restarting redis-server")
        fleet.restart_store()
    elif kind == "cut":
        say("[chaos] cutting RabbitMQ connections")
        fleet.cut_broker()
    elif kind == "poison":
        for s in submitter.poison(queue_name(fleet.settings, "default")):
            say(f"[chaos] poison {s.task_id}")
    elif kind == "sigterm":
        s = Submission(f"c-long-{time.time_ns()}", "long", "chaos.long", [0, 4.0])
        submitter.submit(s)
        store = redis.Redis.from_url(fleet.settings.redis_url, decode_responses=True)
        key = Keys(fleet.settings.key_prefix).task(s.task_id)
        deadline = time.monotonic() + 60
        host = None
        while time.monotonic() < deadline and not host:
            rec = store.hgetall(key)
            host = rec.get("worker") if rec.get("state") == "STARTED" else None
            time.sleep(0.1)
        store.close()
        for i, w in enumerate(fleet.workers):
            if w.hostname == host:
                say(f"[chaos] SIGTERM worker {w.pid} while it runs {s.task_id}")
                fleet.term_worker(i)


def _settle(store: redis.Redis, keys: Keys, sent: list[Submission], timeout: float,
            say: Say) -> None:
    deadline = time.monotonic() + timeout
    pending = settled(store, keys, sent)
    last_change, last = time.monotonic(), pending
    # Stop early once nothing moved for STABLE seconds (longer than the visibility timeout,
    # after which the Redis transport restores an unacknowledged message).
    while pending and time.monotonic() < deadline and time.monotonic() - last_change < STABLE:
        time.sleep(2)
        pending = settled(store, keys, sent)
        if pending != last:
            last_change, last = time.monotonic(), pending
    say(f"[chaos] settled: {len(sent) - pending}/{len(sent)} final in Warden")
    time.sleep(2)  # let the last flushes land


def _processor(env: dict[str, str], batch: int, rounds: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.chaos.dlqproc", str(batch), str(rounds)], cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL)


def _dlq_phase(fleet: ChaosFleet, env: dict[str, str], truth_client: redis.Redis,
               store: redis.Redis, keys: Keys, sent: list[Submission], say: Say) -> float:
    """Fix the failing tasks, kill one processor mid-requeue, race two, then sweep."""
    truth_client.set(truth.FIXED, "1")
    victim = _processor(env, 1, 10_000)
    assert victim.stdout is not None
    victim.stdout.readline()  # it has requeued something: kill it inside the loop
    time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    victim.stdout.close()
    killed_at = time.time()
    fleet.log.count("DLQ processor SIGKILL mid-requeue")
    racers = [_processor(env, 5, 10_000) for _ in range(2)]
    for p in racers:
        p.communicate(timeout=300)
    fleet.log.count("DLQ processors racing", 2)
    time.sleep(float(env.get("WARDEN_DLQ_CLAIM_LEASE", "5")) + 1)  # the victim's claims lapse
    sweep = _processor(env, 50, 10_000)
    sweep.communicate(timeout=300)
    requeued = [t for e in entries(store, keys, sorted({s.task_id for s in sent})).values()
                for t in _ids(e.get("requeued_task_ids"))]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        recs = records(store, keys, requeued)
        if all(r.get("state") in FINAL for r in recs.values()):
            break
        time.sleep(1)
    say(f"[chaos] DLQ phase: {len(requeued)} requeued task ids")
    return killed_at


def _depths(app: object, settings: object) -> object:
    from celery_warden.read.monitor import CeleryMonitor

    monitor = CeleryMonitor(settings, app=app)  # type: ignore[arg-type]
    try:
        return monitor.get_queue_depths()
    except Exception as exc:  # a report line, not a reason to lose the run's table
        return f"unknown ({type(exc).__name__}: {exc})"


def _ids(text: str | None) -> list[str]:
    import json

    return [str(v) for v in json.loads(text)] if text else []


def _counters(store: redis.Redis, keys: Keys, report: Report, say: Say) -> None:
    """Warden's per-name counters summed over minutes, shown beside the truth's totals."""
    totals: dict[str, int] = {}
    for key in store.scan_iter(match=keys.minute_bucket("*", 0)[:-2] + ":*", count=1000):
        for field in ("success", "revoked"):
            totals[field] = totals.get(field, 0) + int(store.hget(key, field) or 0)
    say(f"[chaos] Warden counters: success={totals.get('success', 0)} "
        f"revoked={totals.get('revoked', 0)} (truth: succeeded={report.succeeded} "
        f"revoked={report.revoked})")
