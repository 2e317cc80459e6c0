"""The spec's fleet self-test (`python test_celery_monitoring.py`) and `warden check`, run as a
user runs them, against a real worker of the reference app started with the spec's command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from celery_warden.settings import WardenSettings
from tests.support import ROOT, WorkerProcess, settings_env

APP = "app.worker.celery_app"
CHECKS = ("basic task execution", "retry mechanisms", "time limits", "batch processing",
          "worker health", "error tracking", "performance monitoring", "queue management")


def run(settings: WardenSettings, *cmd: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(settings), "PYTHONPATH": str(ROOT)}
    return subprocess.run(list(cmd), cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240)


def spec_worker(settings: WardenSettings) -> WorkerProcess:
    return WorkerProcess(settings, app=APP, queues=[f"{settings.queue_prefix}default",
                                                    f"{settings.queue_prefix}high_priority"])


def test_the_spec_self_test_passes_against_a_live_reference_fleet(settings, workers):
    """`python test_celery_monitoring.py`: one PASS line for each of the spec's eight areas, a
    summary, exit code 0."""
    workers.append(spec_worker(settings).start())
    done = run(settings, sys.executable, "test_celery_monitoring.py", "--timeout", "60")
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    for name in CHECKS:
        assert any(line.startswith("PASS") and name in line for line in lines), name
    assert lines[-1].startswith("OK: 8 passed, 0 failed")


def test_the_spec_self_test_fails_clearly_without_a_fleet(settings):
    """No worker running: checks fail one by one with a reason, the run ends, exit code 1."""
    done = run(settings, sys.executable, "test_celery_monitoring.py", "--timeout", "3")
    assert done.returncode == 1, done.stdout + done.stderr[-2000:]
    assert "Traceback" not in done.stdout
    last = done.stdout.splitlines()[-1]
    assert last.startswith("FAILED:") and "failed" in last


def test_warden_check_reads_and_probes_a_live_fleet(settings, workers):
    """`warden check` passes read-only with the probe skipped; `--submit QUEUE` follows
    Warden's probe task through a real worker (JSON output)."""
    workers.append(spec_worker(settings).start())
    warden = str(ROOT / ".venv" / "bin" / "warden") if (ROOT / ".venv/bin/warden").exists() \
        else "warden"
    read_only = run(settings, warden, "check")
    assert read_only.returncode == 0, read_only.stdout + read_only.stderr
    assert "SKIP  probe task end to end" in read_only.stdout
    queue = f"{settings.queue_prefix}default"
    probed = run(settings, warden, "check", "--submit", queue, "--json")
    assert probed.returncode == 0, probed.stdout + probed.stderr
    report = json.loads(probed.stdout)
    probe = next(c for c in report["checks"] if c["name"] == "probe task end to end")
    assert probe["status"] == "pass" and queue in probe["detail"]
    assert report["summary"] == {"pass": 8, "fail": 0, "skip": 0}


def test_warden_check_fails_when_no_worker_is_online(settings):
    """Without a worker, `warden check` says so and exits 1 (no traceback)."""
    done = run(settings, sys.executable, "-m", "celery_warden.cli.main", "check")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL  workers online" in done.stdout and "no online worker" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
