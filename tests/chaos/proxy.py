"""A loopback TCP proxy the chaos driver can cut: RabbitMQ connection loss on demand.

Listens on a free 127.0.0.1 port and forwards to the broker. ``cut(seconds)`` closes every open
connection at once and refuses new ones for that long — what a network partition or a broker
restart looks like to the workers and the publisher — without touching the shared broker.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time


class CuttableProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(128)
        self._server.settimeout(0.2)
        self.port = int(self._server.getsockname()[1])
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._refuse_until = 0.0
        self._stop = threading.Event()
        #: While set, nothing is forwarded either way: a peer that stopped answering.
        self.frozen = threading.Event()
        self.cuts = 0
        self._thread = threading.Thread(target=self._accept, name="chaos-proxy", daemon=True)

    def start(self) -> CuttableProxy:
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            if time.monotonic() < self._refuse_until:
                conn.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                conn.close()
                continue
            with self._lock:
                self._pairs.append((conn, upstream))
            threading.Thread(target=self._pump, args=(conn, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        socks = [a, b]
        try:
            while not self._stop.is_set():
                if self.frozen.is_set():
                    time.sleep(0.05)
                    continue
                readable, _, _ = select.select(socks, [], [], 0.5)
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except (OSError, ValueError):
            return
        finally:
            self._drop(a, b)

    def _drop(self, a: socket.socket, b: socket.socket) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._pairs.remove((a, b))
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def cut(self, seconds: float) -> int:
        """Close every connection now and refuse new ones for ``seconds``; returns how many."""
        self._refuse_until = time.monotonic() + seconds
        with self._lock:
            pairs = list(self._pairs)
        for a, b in pairs:
            self._drop(a, b)
        self.cuts += 1
        return len(pairs)

    def close(self) -> None:
        self._stop.set()
        self.cut(0)
        self._thread.join(2)
        self._server.close()
