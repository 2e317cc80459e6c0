"""A real HTTP dependency on loopback for the resilience tests: counts and times every request.

``FlakyServer`` is a threaded ``http.server`` on 127.0.0.1:<free port>. Switch it between healthy
and failing with ``server.failing = True/False``; every request is recorded with the server's
own timestamp, so tests count calls and measure rates where the calls arrive, not where they
are sent. Paths:

* ``/call``: 200 (or 503 while failing);
* ``/work?key=K[&sleep=S]``: 200 with body ``K:<n>`` where n counts calls for K (503 while
  failing), answered after ``S`` seconds;
* ``/flaky?key=K``: 503 on the first call for K, 200 afterwards;
* ``/hang?key=K``: blocks until ``release()`` (at most ``HANG_MAX`` seconds), then 200.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

HANG_MAX = 60.0


class FlakyServer:
    def __init__(self) -> None:
        self.failing = False
        self.requests: list[tuple[float, str, str, int]] = []  # (time, path, key, status)
        self._lock = threading.Lock()
        self._per_key: Counter[str] = Counter()
        self._release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._handle(self)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> FlakyServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def release(self) -> None:
        self._release.set()

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        parsed = urlparse(req.path)
        query = parse_qs(parsed.query)
        key = (query.get("key") or [""])[0]
        delay = min(float((query.get("sleep") or ["0"])[0]), 10.0)
        now = time.time()
        with self._lock:
            self._per_key[f"{parsed.path}:{key}"] += 1
            n = self._per_key[f"{parsed.path}:{key}"]
        status = 200
        failing = parsed.path in ("/call", "/work") and self.failing
        if failing or (parsed.path == "/flaky" and n == 1):
            status = 503
        with self._lock:
            self.requests.append((now, parsed.path, key, status))
        if parsed.path == "/hang":
            self._release.wait(HANG_MAX)
        elif delay > 0:
            time.sleep(delay)
        body = f"{key}:{n}".encode()
        try:
            req.send_response(status)
            req.send_header("Content-Length", str(len(body)))
            req.end_headers()
            req.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the caller is gone (a SIGKILLed worker): nothing to answer

    def count(self, path: str | None = None, key: str | None = None,
              status: int | None = None) -> int:
        with self._lock:
            return sum(1 for _, p, k, s in self.requests
                       if (path is None or p == path) and (key is None or k == key)
                       and (status is None or s == status))

    def times(self, path: str) -> list[float]:
        with self._lock:
            return sorted(t for t, p, _, _ in self.requests if p == path)
