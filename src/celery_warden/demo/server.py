"""The demo's API server: ``celery -A <app> warden serve`` on loopback, as a third child.

Reads are open (``WARDEN_API_OPEN_READS=true``) because it listens on 127.0.0.1 only, and the
demo says so when it starts; mutations still need a token (``warden token create``). Port 8000
unless it is taken, then a free one, so a second demo or another server never stops it.
The server leaves alert evaluation to the demo's own evaluator (``WARDEN_SERVE_ALERTS=false``).
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from celery_warden.demo.children import Child

HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def pick_port(preferred: int) -> int:
    """``preferred`` if nothing listens there, else a free port chosen by the kernel."""
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise OSError("no free port on 127.0.0.1")  # pragma: no cover - port 0 always binds


def server_child(app: str, port: int, env: dict[str, str], cwd: str, log: Path) -> Child:
    env = {**env, "WARDEN_API_OPEN_READS": "true", "WARDEN_SERVE_ALERTS": "false"}
    cmd = [sys.executable, "-m", "celery", "-A", app, "warden", "serve", "--host", HOST,
           "--port", str(port)]
    return Child("server", cmd, env, cwd, log)


def url(port: int) -> str:
    return f"http://{HOST}:{port}"


__all__ = ["DEFAULT_PORT", "HOST", "pick_port", "server_child", "url"]
