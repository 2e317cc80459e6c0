"""`warden alerts` and `warden autoscale` as a user runs them (the console script in a
subprocess): a bad rules file exits 2 with its line, untrusted text is printed literally,
secrets in webhook URLs never appear, and the autoscaler answers in JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from celery_warden.alerts.engine import Evaluator
from celery_warden.record.recorder import Recorder
from tests.support import ROOT, settings_env

WARDEN = str(Path(sys.executable).parent / "warden")


def warden(settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([WARDEN, *args], env={**base, **settings_env(settings), **env},
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def test_a_bad_rules_file_exits_2_with_its_line(settings, tmp_path):
    """`warden alerts rules` and `warden alerts run` refuse a bad file: exit 2, the file, the
    line and the reason on stderr, no traceback."""
    bad = tmp_path / "rules.toml"
    bad.write_text('[[rules]]\nname = "A"\nmetric = "queue_depth"\nthreshold = "lots"\n')
    for args in (["alerts", "rules"], ["alerts", "run"]):
        done = warden(settings, *args, WARDEN_ALERT_RULES=str(bad))
        assert done.returncode == 2, done.stdout + done.stderr
        assert f"{bad}:4: rule 'A': 'threshold' must be a number" in done.stderr
        assert "Traceback" not in done.stderr


def test_list_prints_hostile_text_literally_and_masks_webhooks(settings_factory):
    """A task name with rich markup and a script tag is shown as written; the Slack URL's
    secret path is never printed by `alerts run`'s banner or anywhere else."""
    secret = "https://hooks.slack.com/services/T000/B000/s3cr3tXYZ"
    settings = settings_factory(WARDEN_ALERT_SLACK_URL=secret, WARDEN_ALERT_LOG="false",
                                WARDEN_ALERT_NOTIFY_ATTEMPTS=1)
    name = "[bold]evil[/]<script>x</script>"
    recorder = Recorder(settings)
    for i in range(30):
        recorder.observe(name, time.time(), "failure" if i < 20 else "success", duration=0.1)
    assert recorder.flush()
    recorder.stop()
    evaluator = Evaluator(settings)
    try:
        assert evaluator.run_once().firing >= 1
    finally:
        evaluator.close()
    listing = warden(settings, "alerts", "list", COLUMNS="400")
    assert listing.returncode == 0, listing.stderr
    assert name in listing.stdout
    assert "s3cr3t" not in listing.stdout + listing.stderr
    failed = warden(settings, "alerts", "history", "--failed", COLUMNS="400")
    assert "https://hooks.slack.com/services/***" in failed.stdout
    assert "s3cr3t" not in failed.stdout


def test_silence_validates_its_arguments(settings):
    """A duration that is not one, or a rule no rule matches, exits 2 with the reason."""
    done = warden(settings, "alerts", "silence", "CeleryWorkerDown", "--for", "soon")
    assert done.returncode == 2 and "--for" in done.stderr
    done = warden(settings, "alerts", "silence", "NoSuchRule", "--for", "1h")
    assert done.returncode == 2 and "no alert rule matches 'NoSuchRule'" in done.stderr
    done = warden(settings, "alerts", "silence", "Celery*", "--for", "1h", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["rule"] == "Celery*"
    done = warden(settings, "alerts", "unsilence", json.loads(done.stdout)["id"])
    assert done.returncode == 0


def test_autoscale_json_has_every_queue_and_the_formula(settings):
    """`warden autoscale --json`: every configured queue with its recommendation."""
    done = warden(settings, "autoscale", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert set(answer["queues"]) >= {f"{settings.queue_prefix}{q}"
                                     for q in ("default", "high_priority", "low_priority")}
    assert "target_latency" in answer["formula"]
    one = json.loads(warden(settings, "autoscale", "--queue", "default", "--json").stdout)
    assert one["queue"] == f"{settings.queue_prefix}default"
    assert isinstance(one["desired_processes"], int)
