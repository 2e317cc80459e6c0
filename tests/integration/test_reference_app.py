"""The reference application (``app/worker/``) behaves as the spec says when started with the
spec's own commands (core defect 3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from celery_warden.dlq.store import DeadLetterQueue
from celery_warden.settings import WardenSettings
from tests.support import ROOT, WorkerProcess, client_app, settings_env, wait_for

APP = "app.worker.celery_app"


def spec_queues(settings: WardenSettings) -> list[str]:
    """``--queues=default,high_priority``, as the spec starts its workers."""
    return [f"{settings.queue_prefix}default", f"{settings.queue_prefix}high_priority"]


def run_with_app(settings: WardenSettings, code: str, *args: str) -> subprocess.CompletedProcess:
    """Python code (or a command) in a fresh process that imports the reference app with the
    test's environment (its own prefixes), as beat or a user's shell would."""
    env = {**os.environ, **settings_env(settings), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", code] if code else list(args)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_beat_tasks_run_on_workers_started_with_the_spec_command(settings, workers):
    """Every task in the beat schedule is routed to a queue that the spec's
    `--queues=default,high_priority` worker consumes, and runs there."""
    workers.append(WorkerProcess(settings, app=APP, queues=spec_queues(settings)).start())
    done = run_with_app(settings, """
import json
from app.worker.celery_app import celery_app
out = {}
for entry in celery_app.conf.beat_schedule.values():
    result = celery_app.send_task(entry["task"])
    result.get(timeout=60)
    out[entry["task"]] = result.state
print(json.dumps(out))
""")
    assert done.returncode == 0, done.stderr[-3000:]
    states = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(states) == {"maintenance.prune_store", "maintenance.expire_dlq",
                           "maintenance.process_dlq", "maintenance.log_kpis",
                           "maintenance.evaluate_alerts", "maintenance.apply_retention"}
    assert set(states.values()) == {"SUCCESS"}


def test_status_warns_when_a_queue_beat_feeds_has_no_consumer(settings, workers):
    """With no online worker consuming the queue the beat tasks go to, `celery -A app warden
    status` says so, naming the queue and the tasks that would pile up there."""
    workers.append(WorkerProcess(settings, app=APP,
                                 queues=[f"{settings.queue_prefix}high_priority"]).start())
    done = run_with_app(settings, "", sys.executable, "-m", "celery", "-A", APP, "warden",
                        "status")
    assert done.returncode == 0, done.stderr[-3000:]
    text = " ".join((done.stdout + done.stderr).split())
    assert "no online worker consumes" in text
    assert f"{settings.queue_prefix}default" in text and "maintenance.process_dlq" in text


def test_an_unhandled_exception_in_a_plain_task_reaches_the_dlq(settings, workers):
    """The spec: failed tasks are sent to the DLQ when unhandled exceptions occur. The
    reference app's plain `example.always_fails` lands there with its error."""
    workers.append(WorkerProcess(settings, app=APP, queues=spec_queues(settings)).start())
    app = client_app(settings)
    try:
        result = app.send_task("example.always_fails", (7,))
        result.get(timeout=30, propagate=False)
        dlq = DeadLetterQueue(settings, app=app)
        entry = wait_for(lambda: dlq.get(result.id), 15, message="the DLQ entry")
        assert entry.reason == "exception" and entry.name == "example.always_fails"
        assert entry.exc_type == "ValueError" and "order 7" in (entry.exc_message or "")
        assert entry.args == [7]
    finally:
        app.close()
