"""A loopback TCP proxy in front of Redis that can turn sick: black-holed, refusing, slow.

``pass`` forwards both ways; ``blackhole`` accepts and keeps connections open but never answers
(what it receives is dropped); ``refuse`` closes every connection and stops listening, so a
connect is refused; ``slow`` delays every chunk sent to Redis by ``delay`` seconds. Threads
only, bound to 127.0.0.1, everything closed by :meth:`close` (a context manager).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType

MODES = ("pass", "blackhole", "refuse", "slow")


class StoreProxy:
    def __init__(self, target_host: str, target_port: int, delay: float = 0.2) -> None:
        self.target = (target_host, target_port)
        self.delay = delay
        self.mode = "pass"
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self._listener: socket.socket | None = None
        self.port = self._listen(0)
        self._acceptor = threading.Thread(target=self._accept, name="store-proxy", daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _listen(self, port: int) -> int:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(64)
        s.settimeout(0.1)
        self._listener = s
        return int(s.getsockname()[1])

    def set_mode(self, mode: str) -> None:
        assert mode in MODES, mode
        with self._lock:
            self.mode = mode
            if mode == "refuse":
                if self._listener is not None:
                    self._listener.close()
                    self._listener = None
                self._drop_all()
            elif self._listener is None:
                self._listen(self.port)

    def _drop_all(self) -> None:
        for c in self._conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()
        self._conns.clear()

    def _accept(self) -> None:
        while not self._closing.is_set():
            listener = self._listener
            if listener is None:
                time.sleep(0.05)
                continue
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            try:
                up = socket.create_connection(self.target, timeout=5)
            except OSError:
                conn.close()
                continue
            for s in (conn, up):
                s.settimeout(0.1)
            with self._lock:
                self._conns += [conn, up]
            for src, dst, upstream in ((conn, up, True), (up, conn, False)):
                t = threading.Thread(target=self._pump, args=(src, dst, upstream), daemon=True)
                t.start()
                self._threads.append(t)

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        while not self._closing.is_set():
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            mode = self.mode
            if mode == "blackhole":
                continue
            if mode == "slow" and upstream:
                time.sleep(self.delay)
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closing.set()
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            self._drop_all()
        self._acceptor.join(2)
        for t in self._threads:
            t.join(2)

    def __enter__(self) -> StoreProxy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


__all__ = ["MODES", "StoreProxy"]
