"""A real ``warden serve`` (uvicorn) on a free loopback port, as a subprocess, for API tests.

Started as ``celery -A <app> warden serve`` (so it knows the test app's task names and reads
with its Warden's settings) or as the plain ``warden serve`` console script; stopped by pid.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from celery_warden.settings import WardenSettings
from tests.support import ROOT, settings_env, wait_for

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ApiServer:
    """``warden serve`` in a subprocess; ``client()`` gives an httpx client for it."""

    def __init__(self, settings: WardenSettings, app: str | None = "tests.apps.api",
                 extra_env: dict[str, str] | None = None, host: str = "127.0.0.1",
                 extra_args: tuple[str, ...] = ()) -> None:
        self.settings = settings
        self.port = free_port()
        self.host = host
        self.url = f"http://127.0.0.1:{self.port}"
        args = ["serve", "--host", host, "--port", str(self.port), *extra_args]
        self.cmd = ([str(BIN / "celery"), "-A", app, "warden", *args] if app
                    else [str(BIN / "warden"), *args])
        self.env = {**os.environ, **settings_env(settings), "PYTHONPATH": str(ROOT),
                    "WARDEN_SERVE_ALERTS": "false", **(extra_env or {})}
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"warden-serve-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> ApiServer:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(self.cmd, cwd=ROOT, env=self.env, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"warden serve exited early:\n{self.log()[-4000:]}")
            try:
                with httpx.Client(timeout=1.0) as c:
                    return c.get(f"{self.url}/api/openapi.json").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout, 0.2, f"warden serve on port {self.port}")
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def client(self, token: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=15.0, **kw)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        log = getattr(self, "_log", None)
        if log is not None and not log.closed:
            log.close()

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
