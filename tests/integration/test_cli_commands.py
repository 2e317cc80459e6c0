"""`warden status|workers|task|perf` and `celery -A ... warden` against a real worker.

The commands run as real subprocesses (the console script and Celery's own `celery` command
with the `celery.commands` entry point) on the test's Redis and prefixes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from celery_warden import CeleryMonitor, Warden
from celery_warden.cli.main import run
from celery_warden.settings import WardenSettings
from tests.conftest import make_settings
from tests.support import ROOT, WorkerProcess, client_app, settings_env, wait_for

BIN = Path(sys.executable).parent
N_ADD = 12


def cli(settings: WardenSettings, *args: str, program: str = "warden",
        extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(settings), "PYTHONPATH": str(ROOT), **(extra_env or {})}
    return subprocess.run([str(BIN / program), *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert "Traceback" not in result.stderr, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def fleet(settings, workers):
    """One real worker, N_ADD successful fleet.add tasks and one failure, all recorded."""
    worker = WorkerProcess(settings).start()
    workers.append(worker)
    app = client_app(settings)
    adds = [app.send_task("fleet.add", (i, i)) for i in range(N_ADD)]
    failed = app.send_task("fleet.fail", ("no luck",))
    assert [r.get(timeout=30) for r in adds] == [2 * i for i in range(N_ADD)]
    failed.get(timeout=30, propagate=False)
    monitor = CeleryMonitor(settings, app=app)
    wait_for(lambda: monitor.get_performance_stats("fleet.add", "5m")["success"] >= N_ADD
             and monitor.get_task_status(failed.id)["state"] == "FAILURE", 15, 0.1,
             "tasks recorded")
    wait_for(lambda: monitor.get_worker_health()["online"] >= 1, 15, 0.1, "worker heartbeat")
    yield SimpleNamespace(worker=worker, app=app, adds=adds, failed=failed)
    Warden.installed_on(app).uninstall()  # type: ignore[union-attr]


def test_status_workers_task_and_perf_as_json(settings, fleet):
    """Each command answers from the store of this fleet (its prefixes), as JSON."""
    status = cli(settings, "status", "--json", "--window", "5m")
    assert status.returncode == 0, status.stderr
    data = as_json(status)
    assert data["key_prefix"] == settings.key_prefix
    assert data["performance"]["success"] == N_ADD and data["performance"]["failure"] == 1
    assert data["kpis"]["task_success_rate"]["value"] == pytest.approx(100 * N_ADD / (N_ADD + 1))
    assert data["workers"]["online"] == 1
    assert [w["hostname"] for w in data["workers"]["workers"]] == [fleet.worker.hostname]
    assert set(data["queues"]) >= {f"{settings.queue_prefix}{q}"
                                   for q in ("default", "high_priority", "low_priority")}

    workers = cli(settings, "workers", "--json")
    assert workers.returncode == 0, workers.stderr
    health = as_json(workers)
    (worker,) = health["workers"]
    assert worker["hostname"] == fleet.worker.hostname and worker["status"] == "online"
    assert worker["pid"] == fleet.worker.pid and worker["concurrency"] == 2

    task = cli(settings, "task", fleet.adds[3].id, "--json")
    assert task.returncode == 0, task.stderr
    info = as_json(task)
    assert (info["state"], info["name"], info["known"]) == ("SUCCESS", "fleet.add", True)
    assert info["worker"] == fleet.worker.hostname

    failed = as_json(cli(settings, "task", fleet.failed.id, "--json"))
    assert failed["state"] == "FAILURE"
    assert failed["error"] == {"type": "ValueError", "message": "no luck"}

    perf = cli(settings, "perf", "fleet.add", "--json", "--window", "5m")
    assert perf.returncode == 0, perf.stderr
    stats = as_json(perf)
    assert (stats["task_name"], stats["count"], stats["success"]) == ("fleet.add", N_ADD, N_ADD)
    assert stats["p95"] is not None and stats["success_rate"] == 100.0

    overall = as_json(cli(settings, "perf", "--json", "--window", "5m"))
    assert overall["count"] == N_ADD + 1
    assert {s["task_name"] for s in overall["tasks"]} == {"fleet.add", "fleet.fail"}


def test_unknown_task_id_exits_1_with_a_clear_message(settings, fleet):
    unknown = str(uuid.uuid4())
    result = cli(settings, "task", unknown, "--json")
    assert result.returncode == 1
    info = as_json(result)
    assert (info["task_id"], info["known"], info["state"]) == (unknown, False, "PENDING")
    plain = cli(settings, "task", unknown)
    assert plain.returncode == 1
    assert f"unknown task id {unknown}" in plain.stderr
    assert "WARDEN_TASK_TTL" in plain.stderr and "Traceback" not in plain.stderr


def test_tables_render_without_json(settings, fleet):
    """The human output names the worker, the KPIs and the task's state."""
    wide = {"COLUMNS": "200"}
    status = cli(settings, "status", extra_env=wide)
    assert status.returncode == 0, status.stderr
    assert "task success rate" in status.stdout and fleet.worker.hostname in status.stdout
    task = cli(settings, "task", fleet.adds[0].id, extra_env=wide)
    assert task.returncode == 0 and "SUCCESS" in task.stdout
    perf = cli(settings, "perf", "fleet.add", "--window", "5m", extra_env=wide)
    assert perf.returncode == 0 and "fleet.add" in perf.stdout


def test_through_celerys_entry_point(settings, fleet):
    """`celery -A tests.apps.fleet warden ...` runs our command inside Celery's CLI."""
    result = cli(settings, "-A", "tests.apps.fleet", "warden", "status", "--json",
                 "--window", "5m", program="celery")
    assert result.returncode == 0, result.stderr
    data = as_json(result)
    assert data["key_prefix"] == settings.key_prefix
    assert data["performance"]["success"] == N_ADD
    assert data["workers"]["online"] == 1
    unknown = cli(settings, "-A", "tests.apps.fleet", "warden", "task", "nope",
                  program="celery")
    assert unknown.returncode == 1 and "unknown task id nope" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    helped = cli(settings, "-A", "tests.apps.fleet", "warden", "--help", program="celery")
    assert helped.returncode == 0 and "status" in helped.stdout


def test_celery_context_app_and_its_warden_settings_are_used(settings, fleet, redis_url,
                                                             monkeypatch, capsys):
    """Invoked by Celery, the command reads the store of the Warden installed on ctx.obj.app,
    not whatever the environment says (here: a different, empty key prefix)."""
    other = make_settings(redis_url)
    for var, value in settings_env(other).items():
        monkeypatch.setenv(var, value)
    with pytest.raises(SystemExit) as exit_info:
        run(["status", "--json", "--window", "5m"], prog_name="celery warden",
            obj=SimpleNamespace(app=fleet.app))
    assert exit_info.value.code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["key_prefix"] == settings.key_prefix != other.key_prefix
    assert data["performance"]["success"] == N_ADD
