"""Test support: real ``celery worker`` processes and scoped Redis clean-up.

Tests start workers as subprocesses (never in-process fakes), wait for their first heartbeat,
and end them by pid: SIGTERM for a clean stop, SIGKILL for chaos.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from celery_warden.settings import WardenSettings, env_var_for

ROOT = Path(__file__).resolve().parent.parent


#: Where the child's store lives is always said explicitly (a child must never guess its Redis).
ALWAYS_EXPORTED = frozenset({"redis_url"})


def settings_env(settings: WardenSettings) -> dict[str, str]:
    """Environment variables that reproduce ``settings`` in a child process: every field that
    differs from its default, or that this process's environment sets (a default is otherwise
    left unset, as a user would leave it, so an app that chooses its own default when a variable
    is unset — the reference app does — can)."""
    env: dict[str, str] = {}
    fields = type(settings).model_fields
    for name in fields:
        value = getattr(settings, name)
        if value is None or (value == fields[name].default and name not in ALWAYS_EXPORTED
                             and env_var_for(name) not in os.environ):
            continue
        env[env_var_for(name)] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def client_app(settings: WardenSettings, name: str = "client") -> Celery:
    """A publishing app for a test: Warden's recommended config and ``Warden(app)``, as a real
    client of the fleet under test would have."""
    from celery_warden import Warden, celery_config

    app = Celery(name, set_as_current=False)
    app.conf.update(celery_config(settings))
    Warden(app, settings)
    return app


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1,
             message: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy; fail with ``message`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last={last!r})")


class WorkerProcess:
    """A ``celery worker`` subprocess for one test."""

    def __init__(self, settings: WardenSettings, app: str = "tests.apps.fleet",
                 queues: list[str] | None = None, concurrency: int = 2,
                 pool: str = "prefork", extra_env: dict[str, str] | None = None,
                 extra_args: list[str] | None = None, name: str | None = None) -> None:
        self.settings = settings
        self.hostname = f"{name or 'w'}-{uuid.uuid4().hex[:6]}@test"
        queues = queues or [f"{settings.queue_prefix}{q}"
                            for q in ("default", "high_priority", "low_priority")]
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"{self.hostname}.log"
        self.cmd = [
            sys.executable, "-m", "celery", "-A", app, "worker",
            "--loglevel=INFO", f"--hostname={self.hostname}", f"--concurrency={concurrency}",
            f"--pool={pool}", "--queues=" + ",".join(queues), "--without-gossip",
            "--without-mingle", *(extra_args or []),
        ]
        self.env = {**os.environ, **settings_env(settings), **(extra_env or {}),
                    "PYTHONPATH": str(ROOT)}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True, timeout: float = 60.0) -> WorkerProcess:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self.cmd, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait:
            self.wait_ready(timeout)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.log()[-4000:]}")
            return " ready." in self.log()

        wait_for(ready, timeout, 0.2, f"worker {self.hostname} ready")

    def children(self) -> list[int]:
        import psutil

        try:
            return [c.pid for c in psutil.Process(self.pid).children()]
        except psutil.Error:
            return []

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (warm shutdown), then SIGKILL of the whole group if it hangs."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the main process and its pool children (by pid; only what we started)."""
        if self.process is None:
            return
        kids = self.children()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for pid in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._close()

    def _close(self) -> None:
        log = getattr(self, "_log", None)
        if log is not None and not log.closed:
            log.close()


def delete_prefix(client: redis.Redis, *prefixes: str) -> int:
    """Delete the keys under our own prefixes (never FLUSHDB on a shared server)."""
    removed = 0
    for prefix in prefixes:
        if not prefix:
            continue
        batch = []
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                removed += client.unlink(*batch)
                batch.clear()
        if batch:
            removed += client.unlink(*batch)
    return removed
