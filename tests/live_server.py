"""A real ``warden serve`` process on a free loopback port, for tests that talk HTTP to it.

Started as the ``warden`` command a user runs (uvicorn inside), with the test's settings in its
environment, and stopped by pid (SIGTERM, then SIGKILL if it hangs).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from celery_warden.embedded import free_port
from celery_warden.settings import WardenSettings
from tests.support import ROOT, settings_env, wait_for


class LiveServer:
    """``warden serve --port <free>`` for one test."""

    def __init__(self, settings: WardenSettings, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"warden-serve-{self.port}.log"
        self.env = {**os.environ, **settings_env(settings), **(extra_env or {}),
                    "PYTHONPATH": str(ROOT)}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> LiveServer:
        warden = str(Path(sys.executable).parent / "warden")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [warden, "serve", "--host", "127.0.0.1", "--port", str(self.port)], cwd=ROOT,
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

        def answers() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"warden serve exited early:\n{self.log()[-4000:]}")
            try:
                with httpx.Client(timeout=2.0) as client:
                    client.get(f"{self.url}/api/openapi.json")
                return True
            except httpx.HTTPError:
                return False

        wait_for(answers, timeout, 0.2, f"warden serve on port {self.port}")
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._log.close()


__all__ = ["LiveServer"]
