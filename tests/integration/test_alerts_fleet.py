"""Alerting on a real fleet (celery worker subprocesses, real Redis, a webhook receiver on
loopback): a failure rate past 10 % fires within one evaluation interval and resolves after
recovery; a stopped worker fires after the (shortened) offline threshold; two `warden alerts
run` processes notify once and the survivor takes over within one interval when the holder is
killed; a silence suppresses; a broken webhook is retried and its failure is visible."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import redis

from celery_warden.alerts.engine import Evaluator
from celery_warden.read.monitor import CeleryMonitor
from tests.receiver import receiver, warden_client
from tests.support import ROOT, WorkerProcess, settings_env, wait_for

pytestmark = pytest.mark.slow

INTERVAL = 1.0
#: Delivery and scheduling allowance on a shared 2-core machine.
SLACK = 1.5


def outcomes(app, successes: int, failures: int, queue: str):
    return [app.send_task("fleet.outcome", args=[i < failures], queue=queue)
            for i in range(successes + failures)]


def finished(monitor: CeleryMonitor, name: str = "fleet.outcome") -> dict:
    return monitor.get_performance_stats(name, "5m")


def warden(settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(settings), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "celery_warden.cli.main", *args], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_failure_rate_fires_within_one_interval_and_resolves(settings_factory, workers):
    """20 successes, then 10 failures of one task: once the recorded rate passes 10 % the
    receiver gets an Alertmanager 'firing' within one interval; 300 more successes bring it
    under 9 % and a 'resolved' follows."""
    with receiver() as hook:
        s = settings_factory(WARDEN_ALERT_INTERVAL=INTERVAL, WARDEN_ALERT_WEBHOOK_URL=hook.url,
                             WARDEN_ALERT_DISABLED="CeleryFleetHighFailRate",
                             WARDEN_ALERT_LOG="false")
        workers.append(WorkerProcess(s, concurrency=2).start())
        queue = f"{s.queue_prefix}default"
        monitor = CeleryMonitor(s)
        evaluator = Evaluator(s).start()
        try:
            with warden_client(s) as app:
                fire_and_recover(app, hook, monitor, queue)
        finally:
            evaluator.close()
            monitor.redis.close()


def fire_and_recover(app, hook, monitor, queue) -> None:
    """The workload and the checks of the failure-rate test (the caller owns the fleet)."""
    outcomes(app, 20, 0, queue)
    wait_for(lambda: finished(monitor)["count"] >= 20, 30, message="20 successes")
    assert hook.bodies == []
    outcomes(app, 0, 10, queue)
    wait_for(lambda: (finished(monitor)["failure_rate"] or 0) > 10, 30, 0.02,
             "failure rate past 10 %")
    passed = time.monotonic()
    (firing,) = hook.wait(1, timeout=INTERVAL + SLACK)
    assert hook.times[0] - passed <= INTERVAL + SLACK
    assert firing["version"] == "4" and firing["status"] == "firing"
    alert = firing["alerts"][0]
    assert alert["labels"]["alertname"] == "CeleryTaskHighFailRate"
    assert alert["labels"]["name"] == "fleet.outcome"
    outcomes(app, 300, 0, queue)
    wait_for(lambda: finished(monitor)["count"] >= 330, 60, message="recovery")
    bodies = hook.wait(2, timeout=INTERVAL + SLACK)
    assert [b["status"] for b in bodies] == ["firing", "resolved"]
    assert bodies[1]["alerts"][0]["fingerprint"] == alert["fingerprint"]
    assert bodies[1]["alerts"][0]["endsAt"] > alert["startsAt"]


def test_stopped_worker_fires_after_the_offline_threshold(settings_factory, workers):
    """WARDEN_ALERT_WORKER_OFFLINE=3: a worker stopped now is reported ~3 s later (not
    before), labelled with its hostname."""
    with receiver() as hook:
        s = settings_factory(WARDEN_ALERT_INTERVAL=INTERVAL, WARDEN_ALERT_WEBHOOK_URL=hook.url,
                             WARDEN_ALERT_WORKER_OFFLINE=3, WARDEN_ALERT_LOG="false")
        worker = WorkerProcess(s, concurrency=1).start()
        workers.append(worker)
        evaluator = Evaluator(s).start()
        try:
            time.sleep(2 * INTERVAL)
            assert hook.bodies == []
            stopped = time.monotonic()
            assert worker.stop() == 0
            (body,) = hook.wait(1, timeout=3 + INTERVAL + SLACK + 1)
            delay = hook.times[0] - stopped
            assert 3 - 1.1 <= delay <= 3 + INTERVAL + SLACK + 1  # last beat <= 1 s before
            alert = body["alerts"][0]
            assert alert["labels"]["alertname"] == "CeleryWorkerDown"
            assert alert["labels"]["hostname"] == worker.hostname
        finally:
            evaluator.close()


def test_two_evaluator_processes_notify_once_and_one_takes_over(settings_factory, workers,
                                                                redis_url):
    """Two `warden alerts run` processes: exactly one 'firing' reaches the receiver; SIGKILL
    the lease holder and the other holds the lease within one interval."""
    interval = 2.0
    with receiver() as hook:
        s = settings_factory(WARDEN_ALERT_INTERVAL=interval, WARDEN_ALERT_WEBHOOK_URL=hook.url,
                             WARDEN_ALERT_DISABLED="CeleryFleetHighFailRate")
        env = {**os.environ, **settings_env(s), "PYTHONPATH": str(ROOT)}
        runs = [subprocess.Popen([sys.executable, "-m", "celery_warden.cli.main", "alerts",
                                  "run"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
                for _ in range(2)]
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        lease = f"{s.key_prefix}:alerts:lease"
        try:
            workers.append(WorkerProcess(s, concurrency=2).start())
            with warden_client(s) as app:
                outcomes(app, 20, 10, f"{s.queue_prefix}default")
            hook.wait(1, timeout=30)
            time.sleep(3 * interval)
            assert hook.statuses() == ["firing"]
            owner = client.get(lease)
            holder = next(p for p in runs if f":{p.pid}:" in owner)
            holder.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            wait_for(lambda: (client.get(lease) or owner) != owner, interval + SLACK, 0.05,
                     "another evaluator holding the lease")
            assert time.monotonic() - killed <= interval + SLACK
            time.sleep(2 * interval)
            assert hook.statuses() == ["firing"]  # the new holder did not notify it again
        finally:
            for p in runs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                p.wait(20)
            client.close()


def test_silence_suppresses_and_a_broken_webhook_is_retried_and_visible(settings_factory,
                                                                        workers):
    """`warden alerts silence CeleryWorkerDown --for 1h`: a stopped worker notifies nothing.
    The failure-rate alert meets a webhook answering 500: tried WARDEN_ALERT_NOTIFY_ATTEMPTS
    times, then listed by `warden alerts history --failed` and counted in `alerts list`."""
    with receiver("/hook/s3cret") as hook:
        hook.answer(*[500] * 20)
        s = settings_factory(WARDEN_ALERT_INTERVAL=INTERVAL, WARDEN_ALERT_WEBHOOK_URL=hook.url,
                             WARDEN_ALERT_WORKER_OFFLINE=1, WARDEN_ALERT_NOTIFY_ATTEMPTS=3,
                             WARDEN_ALERT_NOTIFY_BACKOFF=0.1, WARDEN_ALERT_LOG="false",
                             WARDEN_ALERT_DISABLED="CeleryFleetHighFailRate")
        silenced = warden(s, "alerts", "silence", "CeleryWorkerDown", "--for", "1h", "--json")
        assert silenced.returncode == 0, silenced.stderr
        assert json.loads(silenced.stdout)["rule"] == "CeleryWorkerDown"
        worker = WorkerProcess(s, concurrency=2).start()
        workers.append(worker)
        evaluator = Evaluator(s).start()
        try:
            with warden_client(s) as app:
                outcomes(app, 20, 10, f"{s.queue_prefix}default")
            hook.wait(3, timeout=30)
            worker.stop()
            monitor = CeleryMonitor(s)
            wait_for(lambda: any(h["alertname"] == "CeleryWorkerDown"
                                 for h in evaluator.store.history()), 15, 0.2,
                     "worker-down alert (silenced)")
            monitor.redis.close()
            time.sleep(2 * INTERVAL)
        finally:
            evaluator.close()
    assert len(hook.bodies) == 3  # three attempts of the failure-rate alert, nothing else
    assert {b["alerts"][0]["labels"]["alertname"] for b in hook.bodies} == {
        "CeleryTaskHighFailRate"}
    failed = json.loads(warden(s, "alerts", "history", "--failed", "--json").stdout)
    assert [(f["alertname"], f["attempts"], f["error"]) for f in failed] == [
        ("CeleryTaskHighFailRate", 3, "HTTP 500 Internal Server Error")]
    listing = warden(s, "alerts", "list")
    assert "failed {'webhook': 1}" in listing.stdout and "s3cret" not in listing.stdout
    history = json.loads(warden(s, "alerts", "history", "--json").stdout)
    down = next(h for h in history if h["alertname"] == "CeleryWorkerDown")
    assert down["silenced"] is True and down["notified"] is False
