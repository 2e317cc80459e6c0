"""The `warden` CLI without a fleet: configuration errors, usage errors, entry points.

Every command runs as the real console script in a subprocess, so exit codes and what reaches
stderr are exactly what a user sees.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import click
import pytest

from celery_warden.cli.main import celery_command
from celery_warden.redaction import mask_url as safe_url
from tests.support import ROOT

WARDEN = str(Path(sys.executable).parent / "warden")


def warden(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([WARDEN, *args], env={**base, **(env or {})}, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.parametrize(
    "args",
    [["status"], ["status", "--json"], ["workers", "--json"], ["task", "abc"],
     ["perf", "--json"], ["demo", "--duration", "1"]],
)
def test_invalid_setting_exits_2_naming_the_variable_without_traceback(args):
    """CELERY_LOG_LEVEL=LOUD: exit code 2, stderr names the variable and what it accepts."""
    result = warden(*args, env={"CELERY_LOG_LEVEL": "LOUD"})
    assert result.returncode == 2, result.stderr
    assert "CELERY_LOG_LEVEL" in result.stderr
    assert "'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""


def test_several_invalid_settings_are_all_named():
    result = warden("status", env={"CELERY_WORKER_CONCURRENCY": "0", "REDIS_URL": "http://x"})
    assert result.returncode == 2
    assert "CELERY_WORKER_CONCURRENCY" in result.stderr and "REDIS_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_window_is_a_usage_error():
    result = warden("perf", "--window", "soon")
    assert result.returncode == 2
    assert "invalid window 'soon'" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_redis_is_one_clear_line_and_exit_1():
    """Nothing listens on port 1: exit code 1 and a message naming the URL (password hidden)."""
    result = warden("workers", env={"REDIS_URL": "redis://:s3cret@127.0.0.1:1/0"})
    assert result.returncode == 1
    assert "cannot read from Redis at redis://:***@127.0.0.1:1/0" in result.stderr
    assert "s3cret" not in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_outside_the_repository_exits_2_with_advice(tmp_path):
    """Run from a directory without the reference app: exit 2 before starting anything."""
    result = warden("demo", "--duration", "1", "--data-dir", str(tmp_path / "d"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "repository root" in result.stderr and "--app" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "d").exists(), "nothing was started or created"


def test_help_lists_every_command():
    result = warden("--help")
    assert result.returncode == 0
    for command in ("status", "workers", "task", "perf", "demo"):
        assert command in result.stdout


def test_every_command_summary_is_one_paragraph_line():
    """typer's command list prints a summary's line breaks as they are: a docstring wrapped at
    the source's width broke `warden --help` mid-sentence ("beat-fed queues that no" / "online
    worker consumes")."""
    import inspect

    import typer

    from celery_warden.cli.main import cli

    broken = []

    def walk(cmd, path):
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])
        first = inspect.cleandoc(cmd.short_help or cmd.help or "").split("\n\n")[0]
        if "\n" in first:
            broken.append(" ".join(path))

    walk(typer.main.get_command(cli), ["warden"])
    assert broken == []


def test_celery_entry_point_is_a_real_click_command():
    """Celery loads `celery.commands` entry points into its own click group: ours must be a
    click command (typer runs on a vendored click, so it is bridged, not exported directly)."""
    found = [ep for ep in entry_points(group="celery.commands") if ep.name == "warden"]
    assert len(found) == 1
    command = found[0].load()
    assert command is celery_command
    assert isinstance(command, click.Command) and command.name == "warden"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:pw@host:6380/1", "redis://:***@host:6380/1"),
        ("rediss://user:pw@host/0", "rediss://user:***@host/0"),
    ],
)
def test_safe_url_hides_passwords(url, shown):
    assert safe_url(url) == shown


@pytest.mark.parametrize("value", ["http://user:hunter2@h:6379/0", "Redis://:hunter2@h/0",
                                   " redis://:hunter2@h/0"])
def test_status_with_an_invalid_redis_url_does_not_print_its_password(value):
    """`warden status` refuses an invalid REDIS_URL (exit 2) naming it, password masked; a
    worker started with it fails the same way, without the password in its traceback."""
    result = warden("status", env={"REDIS_URL": value})
    assert result.returncode == 2, result.stderr
    assert f"REDIS_URL={safe_url(value)!r} is invalid" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    worker = subprocess.run(
        [str(Path(sys.executable).parent / "celery"), "-A", "app.worker.celery_app", "worker"],
        env={**base, "REDIS_URL": value}, cwd=ROOT, capture_output=True, text=True,
        timeout=60, check=False)
    assert worker.returncode != 0
    assert "REDIS_URL=" in worker.stdout + worker.stderr
    assert "hunter2" not in worker.stdout + worker.stderr
