"""Worker and beat as child processes: own session, parent-death signal, stopped by pid."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

#: Seconds worker and beat get to stop after SIGTERM before SIGKILL (a second Ctrl-C: 2 s).
STOP_TIMEOUT = 20.0
URGENT_STOP_TIMEOUT = 2.0


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when the demo dies (even SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig, sigterm = 1, int(signal.SIGTERM)

    def preexec() -> None:
        prctl(pr_set_pdeathsig, sigterm, 0, 0, 0)

    return preexec


class Child:
    """A worker or beat process started by the demo, stopped by pid (never by name)."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], cwd: str,
                 log_path: Path) -> None:
        self.name = name
        self.cmd = cmd
        self.env = env
        self.cwd = cwd
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        #: Descendants seen while running (the worker's pool), reaped by pid if left behind.
        self.descendants: dict[int, psutil.Process] = {}

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:  # one run per file: bounded, never appended
            log.write(f"\n--- warden demo: starting {self.name} at {time.ctime()}\n".encode())
            log.flush()
            # preexec_fn runs before any thread of ours exists (the workload starts later).
            self.process = subprocess.Popen(
                self.cmd, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_parent_death_signal(),
            )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def track(self) -> None:
        """Remember the current descendants (called every refresh)."""
        if not self.alive() or self.pid is None:
            return
        try:
            for proc in psutil.Process(self.pid).children(recursive=True):
                self.descendants.setdefault(proc.pid, proc)
        except psutil.Error:
            pass

    def terminate(self) -> None:
        """SIGTERM (Celery's warm shutdown: finish running tasks, then exit)."""
        self.track()
        if self.process is not None and self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float, urgent: Callable[[], bool]) -> str:
        """Wait up to ``timeout`` (less once ``urgent()``), then SIGKILL; reap leftovers."""
        if self.process is None:
            return "not started"
        deadline = time.monotonic() + timeout
        how = "stopped"
        while self.alive():
            now = time.monotonic()
            if urgent():
                deadline = min(deadline, now + URGENT_STOP_TIMEOUT)
            if now >= deadline:
                self.kill()
                how = "killed (did not stop in time)"
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(0.1)
        leftovers = [p for p in self.descendants.values() if _running(p)]
        if leftovers:
            _gone, alive = psutil.wait_procs(leftovers, timeout=3)
            for proc in alive:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
        return f"{how} (exit code {self.process.returncode})"

    def kill(self) -> None:
        """SIGKILL the process and the descendants it started."""
        self.track()
        if self.process is not None and self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
        for proc in self.descendants.values():
            with contextlib.suppress(psutil.Error):
                proc.kill()

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
