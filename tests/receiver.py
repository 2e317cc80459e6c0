"""A webhook receiver on loopback for alert tests: records every POST and answers with the
status codes (and headers) a test scripts, then 200."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """What one server received, and what it answers next."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.paths: list[str] = []
        self.answers: list[tuple[int, dict[str, str]]] = []
        self.lock = threading.Lock()
        self.url = ""

    def answer(self, *codes: int | tuple[int, dict[str, str]]) -> None:
        """Queue answers for the next requests (an int, or (code, headers))."""
        with self.lock:
            self.answers += [c if isinstance(c, tuple) else (c, {}) for c in codes]

    def statuses(self) -> list[str]:
        with self.lock:
            return [b.get("status", "?") for b in self.bodies]

    def wait(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.bodies) >= count:
                    return list(self.bodies)
            time.sleep(0.05)
        raise AssertionError(f"expected {count} notifications within {timeout}s, got "
                             f"{self.statuses()}")


@contextmanager
def receiver(path: str = "/hook") -> Iterator[Receiver]:
    """A ThreadingHTTPServer on 127.0.0.1 (a free port), stopped on exit."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            with state.lock:
                state.bodies.append(json.loads(raw or b"{}"))
                state.times.append(time.monotonic())
                state.paths.append(self.path)
                code, headers = state.answers.pop(0) if state.answers else (200, {})
            self.send_response(code)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def warden_client(settings: Any) -> Iterator[Any]:
    """A publishing app with Warden (tests.support.client_app), uninstalled and with its Redis
    connections closed afterwards (no unclosed socket under filterwarnings=error)."""
    from celery_warden import Warden
    from tests.support import client_app

    app = client_app(settings)
    try:
        yield app
    finally:
        warden = Warden.installed_on(app)
        if warden is not None:
            warden.uninstall()
            if warden.services._client is not None:
                warden.services._client.close()
        app.close()
