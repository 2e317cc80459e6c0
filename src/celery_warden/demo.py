"""``warden demo``: a whole monitored fleet on one machine, with a live summary.

What it does, in order:

1. **Redis**: :func:`celery_warden.embedded.resolve_redis`: ``REDIS_URL`` if set, else
   127.0.0.1:6379 if it answers, else an embedded ``redis-server`` with its data and AOF under
   the data directory (stopped on exit). It prints which one it uses.
2. **Worker and beat** of the reference app as child processes
   (``python -m celery -A app.worker.celery_app worker|beat``) in the current directory, with
   their output in ``<data dir>/logs/``. Each runs in its own session (a Ctrl-C in the terminal
   reaches only the demo, which then stops them in order) and, on Linux, gets SIGTERM from the
   kernel if the demo itself is killed, so nothing is orphaned.
3. **Workload**: a thread sends a steady mix of the reference app's tasks by name at
   ``--rate`` tasks/s: mostly ``example.add``, some slow, flaky (retrying), failing, order and
   high-priority tasks, so every number on the summary moves.
4. **Summary** from :class:`~celery_warden.monitor.CeleryMonitor` every ``--interval``
   seconds: throughput, success and retry rates, p95, workers, queue depths, tasks sent. A read
   that fails (Redis restarting, say) is shown in the summary, never fatal.
5. **Stop** on Ctrl-C, SIGTERM, SIGHUP or after ``--duration``: workload first, then SIGTERM to
   worker and beat (SIGKILL by pid, with the pool processes they started, if they hang), then
   the embedded Redis, then a final summary. A second Ctrl-C makes the stop immediate.

Unless ``WARDEN_TASK_TTL`` is set, the demo keeps task records one hour instead of a day, so a
demo left running stays small (20 tasks/s for a day would be 1.7 M records); unless
``CELERY_LOG_LEVEL`` is set, worker and beat log at WARNING (INFO writes two lines per task).

Exit codes: 0 after a normal stop, 1 if Redis could not be started or a child process died,
2 for a configuration problem (invalid setting, app not importable).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import psutil
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from celery_warden.config import QUEUES, queue_name
from celery_warden.embedded import EmbeddedRedis, answers, resolve_redis
from celery_warden.errors import EmbeddedRedisError, SettingsError
from celery_warden.settings import WardenSettings, load_settings

if TYPE_CHECKING:
    from celery import Celery

    from celery_warden.monitor import CeleryMonitor

#: Task-record TTL for the demo unless WARDEN_TASK_TTL is set (see the module docstring).
DEMO_TASK_TTL = "3600"
#: Worker/beat log level unless CELERY_LOG_LEVEL is set: INFO logs two lines per task.
DEMO_LOG_LEVEL = "WARNING"
#: Seconds worker and beat get to stop after SIGTERM before SIGKILL (a second Ctrl-C: 2 s).
STOP_TIMEOUT = 20.0
URGENT_STOP_TIMEOUT = 2.0
#: The workload: (task name, weight). Weights are percentages.
MIX: tuple[tuple[str, int], ...] = (
    ("example.add", 55),
    ("example.process_order", 15),
    ("example.flaky", 12),
    ("example.urgent_ping", 8),
    ("example.slow", 5),
    ("example.always_fails", 5),
)


@dataclass(frozen=True)
class DemoOptions:
    duration: float = 0.0
    rate: float = 20.0
    concurrency: int = 2
    app: str = "app.worker.celery_app"
    data_dir: Path = Path(".warden")
    interval: float = 2.0


class DemoFailure(Exception):
    """Ends the demo with a message and an exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# -- signals ---------------------------------------------------------------------------------
class StopFlag:
    """Set by SIGINT, SIGTERM or SIGHUP; a second signal asks for an immediate stop."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.event = threading.Event()
        self.count = 0
        self.reason = ""

    def install(self) -> Callable[[], None]:
        """Install the handlers; returns a function that restores the previous ones."""
        previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        self.reason = self.reason or signal.Signals(signum).name
        self.event.set()

    @property
    def urgent(self) -> bool:
        return self.count > 1


# -- child processes -------------------------------------------------------------------------
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


# -- workload --------------------------------------------------------------------------------
class Workload(threading.Thread):
    """Sends the task mix at a steady rate by name (``send_task``) with the reference app."""

    def __init__(self, app: Celery, settings: WardenSettings, rate: float) -> None:
        super().__init__(name="warden-demo-workload", daemon=True)
        self.app = app
        self.settings = settings
        self.rate = rate
        self.stopping = threading.Event()
        self.sent = 0
        self.errors = 0
        self.last_error: str | None = None
        self.by_name: dict[str, int] = {}
        self._rng = random.Random()
        self._names = [name for name, _ in MIX]
        self._weights = [weight for _, weight in MIX]
        self._order = 0

    def message(self, name: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Arguments and options of one message of ``name``."""
        rng = self._rng
        self._order += 1
        default = queue_name(self.settings, "default")
        if name == "example.add":
            return (rng.randint(0, 1000), rng.randint(0, 1000)), {"queue": default}
        if name == "example.slow":
            return (round(rng.uniform(0.2, 1.0), 3),), {
                "queue": queue_name(self.settings, "low_priority"), "priority": 2}
        if name == "example.flaky":
            return (0.3,), {"queue": default}
        if name == "example.always_fails":
            return (self._order,), {"queue": default}
        if name == "example.process_order":
            items = [{"sku": f"SKU-{rng.randint(1, 500)}", "price": round(rng.uniform(1, 90), 2),
                      "qty": rng.randint(1, 4)} for _ in range(rng.randint(1, 5))]
            return (self._order, items), {"queue": default}
        if name == "example.urgent_ping":
            return (), {"queue": queue_name(self.settings, "high_priority"), "priority": 9}
        return (), {"queue": default}

    def send_one(self) -> None:
        name = self._rng.choices(self._names, self._weights)[0]
        args, options = self.message(name)
        self.app.send_task(name, args=args, ignore_result=True, **options)
        self.sent += 1
        self.by_name[name] = self.by_name.get(name, 0) + 1

    def run(self) -> None:
        period = 1.0 / self.rate
        next_at = time.monotonic()
        while not self.stopping.is_set():
            try:
                self.send_one()
            except Exception as exc:  # broker unreachable: count it, back off, keep going
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.stopping.wait(1.0)
                next_at = time.monotonic()
                continue
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0:
                self.stopping.wait(delay)
            elif delay < -1.0:  # fell behind (slow broker): do not burst to catch up
                next_at = time.monotonic()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)


# -- summary ---------------------------------------------------------------------------------
#: Counters the summary reports "since the demo started" (differences from a baseline).
COUNTED = ("count", "success", "failure", "retry")


@dataclass
class Snapshot:
    elapsed: float
    sent: int = 0
    send_errors: int = 0
    #: Counts since the demo started (``count`` = tasks finished), None if unreadable.
    counts: dict[str, int] | None = None
    throughput: float | None = None
    #: Rolling stats (the last 5 minutes), or over the run for the final summary.
    recent: dict[str, Any] | None = None
    health: dict[str, Any] | None = None
    depths: dict[str, int | None] | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def finished(self) -> int | None:
        return None if self.counts is None else self.counts["count"]


class Summary:
    """Reads the monitor; every read may fail on its own without ending the demo.

    "Since start" counts must not include what an earlier run (same Redis, same prefixes)
    recorded in the same minutes, and metric buckets have one-minute resolution. So the run's
    window always starts exactly at :attr:`anchor` (the minute before the start minute) and the
    counts found there at start-up are the baseline subtracted from every later reading.
    """

    def __init__(self, monitor: CeleryMonitor, queues: list[str],
                 workload: Workload | None) -> None:
        self.monitor = monitor
        self.queues = queues
        self.workload = workload
        self.started = time.monotonic()
        self.anchor = (int(time.time()) // 60 - 1) * 60
        self.baseline: dict[str, int] | None = None
        self._prev: tuple[float, int] | None = None

    def run_window(self) -> int:
        """Seconds from :attr:`anchor` to now (>= 60): the window starts in the anchor minute."""
        return max(60, int(time.time() - self.anchor))

    def take_baseline(self) -> str | None:
        """Read the counts already in the run's window; returns an error text if it failed."""
        try:
            stats = self.monitor.get_performance_stats(None, self.run_window())
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        self.baseline = {k: int(stats[k]) for k in COUNTED}
        self.started = time.monotonic()
        return None

    def snapshot(self, final: bool = False) -> Snapshot:
        now = time.monotonic()
        snap = Snapshot(elapsed=now - self.started)
        if self.workload is not None:
            snap.sent, snap.send_errors = self.workload.sent, self.workload.errors
            if self.workload.last_error and self.workload.errors:
                snap.errors.append(f"send: {self.workload.last_error} "
                                   f"({self.workload.errors} failed sends)")
        m = self.monitor
        try:
            run = m.get_performance_stats(None, self.run_window())
            base = self.baseline or dict.fromkeys(COUNTED, 0)
            snap.counts = {k: max(0, int(run[k]) - base[k]) for k in COUNTED}
            finished = snap.counts["count"]
            if self._prev is not None and now > self._prev[0]:
                snap.throughput = max(0, finished - self._prev[1]) / (now - self._prev[0])
            self._prev = (now, finished)
            if final:
                snap.recent = run
        except Exception as exc:
            snap.errors.append(f"performance: {type(exc).__name__}: {exc}")
        if not final:
            try:
                snap.recent = m.get_performance_stats(None, "5m")
            except Exception as exc:
                snap.errors.append(f"performance: {type(exc).__name__}: {exc}")
        try:
            snap.health = m.get_worker_health()
        except Exception as exc:
            snap.errors.append(f"workers: {type(exc).__name__}: {exc}")
        try:
            snap.depths = m.get_queue_depths(self.queues)
        except Exception as exc:
            snap.errors.append(f"queues: {type(exc).__name__}: {exc}")
        snap.errors = list(dict.fromkeys(snap.errors))
        return snap


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _secs(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _workers_text(health: dict[str, Any] | None) -> str:
    if health is None:
        return "? online, ? offline"
    return f"{health['online']} online, {health['offline']} offline"


def _queues_text(depths: dict[str, int | None] | None) -> str:
    if depths is None:
        return "?"
    return " ".join(f"{name}={'-' if d is None else d}" for name, d in depths.items())


def summary_line(snap: Snapshot) -> str:
    """One line per refresh when stdout is not a terminal (logs, CI, tests)."""
    r = snap.recent or {}
    throughput = "-" if snap.throughput is None else f"{snap.throughput:.1f}"
    line = (
        f"[{_clock(snap.elapsed)}] sent {snap.sent} | throughput {throughput} tasks/s | "
        f"finished {'-' if snap.finished is None else snap.finished} | "
        f"success {_pct(r.get('success_rate'))} | p95 {_secs(r.get('p95'))} | "
        f"retry rate {_pct(r.get('retry_rate'))} | workers {_workers_text(snap.health)} | "
        f"queues {_queues_text(snap.depths)}"
    )
    return "\n".join([line, *(f"  ! read error: {e}" for e in snap.errors)])


def summary_table(snap: Snapshot, rate: float) -> Table:
    r = snap.recent or {}
    table = Table(title=f"Celery Warden demo · {_clock(snap.elapsed)} · Ctrl-C to stop",
                  title_justify="left", show_header=False, min_width=60)
    table.add_column("metric", style="bold")
    table.add_column("value")
    sent = f"{snap.sent} (target {rate:g}/s)"
    if snap.send_errors:
        sent += f", {snap.send_errors} failed"
    table.add_row("tasks sent", sent)
    table.add_row("throughput", "-" if snap.throughput is None
                  else f"{snap.throughput:.1f} tasks/s")
    table.add_row("finished", "-" if snap.finished is None else f"{snap.finished} since start")
    table.add_row("success rate (5m)", _pct(r.get("success_rate")))
    table.add_row("retry rate (5m)", _pct(r.get("retry_rate")))
    table.add_row("p95 duration (5m)", _secs(r.get("p95")))
    workers = _workers_text(snap.health)
    if snap.health:
        online = [w["hostname"] for w in snap.health["workers"] if w["status"] == "online"]
        if online:
            workers += f" ({', '.join(online)})"
    table.add_row("workers", workers)
    table.add_row("queue depths", _queues_text(snap.depths))
    for error in snap.errors:
        table.add_row(Text("read error", style="red"), Text(error, style="red"))
    return table


def final_lines(snap: Snapshot) -> list[str]:
    lines = [f"ran {snap.elapsed:.1f}s; sent {snap.sent} tasks"
             + (f" ({snap.send_errors} sends failed)" if snap.send_errors else "")]
    c = snap.counts
    if c is not None:
        avg = c["count"] / snap.elapsed if snap.elapsed > 0 else 0.0
        judged = c["success"] + c["failure"]
        success_rate = c["success"] / judged if judged else None
        retry_rate = c["retry"] / c["count"] if c["count"] else None
        lines += [
            f"finished {c['count']} (success {c['success']}, failure {c['failure']}, "
            f"retries {c['retry']}); average throughput {avg:.1f} tasks/s",
            f"success rate {_pct(success_rate)} | retry rate {_pct(retry_rate)}",
        ]
    if snap.recent is not None:
        r = snap.recent
        lines.append(f"durations over the run's minutes: p50 {_secs(r['p50'])} | "
                     f"p95 {_secs(r['p95'])} | p99 {_secs(r['p99'])}")
    lines.append(f"workers {_workers_text(snap.health)} | queues left "
                 f"{_queues_text(snap.depths)}")
    lines += [f"read error: {e}" for e in snap.errors]
    return lines


class Display:
    """rich Live on a terminal; one plain line per refresh otherwise."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.console = Console(highlight=False)
        self.interactive = self.console.is_terminal
        self.live: Live | None = None

    def info(self, message: str) -> None:
        with contextlib.suppress(OSError):  # a closed terminal (SIGHUP) must not stop clean-up
            if self.interactive:
                self.console.print(message, markup=False, highlight=False)
            else:
                print(message, flush=True)

    def start(self) -> None:
        if self.interactive:
            self.live = Live(console=self.console, auto_refresh=False, transient=False,
                             redirect_stdout=False, redirect_stderr=False)
            self.live.start()

    def update(self, snap: Snapshot) -> None:
        with contextlib.suppress(OSError):
            if self.live is not None:
                self.live.update(summary_table(snap, self.rate), refresh=True)
            else:
                print(summary_line(snap), flush=True)

    def stop(self) -> None:
        if self.live is not None:
            live, self.live = self.live, None
            with contextlib.suppress(OSError):
                live.stop()

    def final(self, snap: Snapshot) -> None:
        lines = final_lines(snap)
        with contextlib.suppress(OSError):
            if self.interactive:
                table = Table(title="Final summary", title_justify="left", show_header=False)
                table.add_column("")
                for line in lines:
                    table.add_row(Text(line, style="red" if "error" in line else ""))
                self.console.print(table)
            else:
                print("final summary:\n" + "\n".join(f"  {line}" for line in lines),
                      flush=True)


def error(message: str) -> None:
    with contextlib.suppress(OSError):
        print(f"warden demo: {message}", file=sys.stderr, flush=True)


# -- the demo --------------------------------------------------------------------------------
def app_importable(app: str) -> bool:
    """Whether the module of ``app`` (``pkg.module`` or ``pkg.module:attr``) can be found."""
    module = app.split(":", 1)[0]
    candidates = [module]
    if ":" not in app and "." in module:
        candidates.append(module.rsplit(".", 1)[0])  # pkg.module.attr form
    for candidate in candidates:
        try:
            if importlib.util.find_spec(candidate) is not None:
                return True
        except (ImportError, ValueError):
            continue
    return False


def load_app(app: str) -> Celery:
    from celery import Celery
    from celery.app.utils import find_app

    try:
        found = find_app(app)
    except SettingsError:
        raise
    except ImportError as exc:
        raise DemoFailure(f"cannot import the app {app!r}: {type(exc).__name__}: {exc}. "
                          "Run from the repository root or pass --app.", 2) from None
    except Exception as exc:
        raise DemoFailure(f"cannot load the app {app!r}: {type(exc).__name__}: {exc}", 2) \
            from None
    if not isinstance(found, Celery):
        raise DemoFailure(f"{app!r} is not a Celery app (got {type(found).__name__})", 2)
    return found


class Demo:
    def __init__(self, opts: DemoOptions, stop: StopFlag) -> None:
        self.opts = opts
        self.stop = stop
        self.cwd = os.getcwd()
        self.data_dir = opts.data_dir.expanduser().resolve()
        self.logs = self.data_dir / "logs"
        self.display = Display(opts.rate)
        self.embedded: EmbeddedRedis | None = None
        self.children: list[Child] = []
        self.workload: Workload | None = None
        self.summary: Summary | None = None
        self.app: Celery | None = None
        self.code = 0
        self._log_handler: logging.Handler | None = None

    # -- start -------------------------------------------------------------------------------
    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self._own_logging()
        self._redis()
        if self.stop.event.is_set():
            return
        os.environ.setdefault("WARDEN_TASK_TTL", DEMO_TASK_TTL)
        log_level_set = bool(os.environ.get("CELERY_LOG_LEVEL"))
        os.environ.setdefault("CELERY_LOG_LEVEL", DEMO_LOG_LEVEL)
        settings = load_settings()
        self.app = load_app(self.opts.app)
        from celery_warden.monitor import CeleryMonitor
        from celery_warden.warden import Warden

        installed = Warden.installed_on(self.app)
        if installed is not None:
            settings = installed.settings
        queues = [queue_name(settings, q) for q in QUEUES]
        self.summary = Summary(CeleryMonitor(settings, app=self.app), queues, None)
        problem = self.summary.take_baseline()
        if problem:
            self.display.info(f"warning: cannot read the store yet ({problem}); counts since "
                              "start may include earlier runs")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (self.cwd, env.get("PYTHONPATH", "")) if p)
        celery = [sys.executable, "-m", "celery", "-A", self.opts.app]
        worker = Child("worker", [
            *celery, "worker", f"--concurrency={self.opts.concurrency}",
            "--queues=" + ",".join(queues), "--hostname=warden-demo@%h",
            "--without-gossip", "--without-mingle",
        ], env, self.cwd, self.logs / "worker.log")
        beat = Child("beat", [
            *celery, "beat", f"--schedule={self.data_dir / 'celerybeat-schedule'}",
        ], env, self.cwd, self.logs / "beat.log")
        for child in (worker, beat):
            child.start()
            self.children.append(child)
            self.display.info(f"{child.name}: pid {child.pid}, log {self._rel(child.log_path)}")
        self.display.info(f"worker queues: {', '.join(queues)}; concurrency "
                          f"{self.opts.concurrency}; task records kept "
                          f"{settings.task_ttl}s (WARDEN_TASK_TTL)")
        if not log_level_set:
            self.display.info(f"worker/beat log level {DEMO_LOG_LEVEL} (CELERY_LOG_LEVEL=INFO "
                              "logs every task)")
        if self.opts.rate > 0:
            self.workload = Workload(self.app, settings, self.opts.rate)
            self.summary.workload = self.workload
            self.workload.start()
            mix = ", ".join(f"{name} {weight}%" for name, weight in MIX)
            self.display.info(f"workload: {self.opts.rate:g} tasks/s ({mix})")
        else:
            self.display.info("workload: none (--rate 0)")
        until = (f"for {self.opts.duration:g}s" if self.opts.duration > 0
                 else "until Ctrl-C")
        self.display.info(f"running {until}; summary every {self.opts.interval:g}s")

    def _rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.cwd))
        except ValueError:
            return str(path)

    def _own_logging(self) -> None:
        """Send this process's log records (Celery, kombu, the recorder) to a file."""
        handler = logging.FileHandler(self.logs / "demo.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)
        self._log_handler = handler

    def _redis(self) -> None:
        from celery_warden.cli import safe_url

        from_env = os.environ.get("REDIS_URL")
        try:
            url, self.embedded = resolve_redis(data_dir=self.data_dir)
        except EmbeddedRedisError as exc:
            raise DemoFailure(f"no Redis: nothing answers on 127.0.0.1:6379 and the embedded "
                              f"redis-server did not start: {exc}", 1) from None
        if self.embedded is not None:
            self.display.info(
                f"Redis: embedded redis-server (pid {self.embedded.pid}) on {url}, data and AOF "
                f"in {self._rel(self.data_dir)}/, stopped on exit "
                "(nothing answered on 127.0.0.1:6379 and REDIS_URL is not set)")
        elif from_env:
            self.display.info(f"Redis: {safe_url(url)} (from REDIS_URL)")
            if not answers(url, 2.0):
                self.display.info("warning: nothing answers at REDIS_URL yet; the worker "
                                  "keeps retrying and the summary shows the errors")
        else:
            self.display.info(f"Redis: {url} (a local server answered; set REDIS_URL to use "
                              "another)")
        os.environ["REDIS_URL"] = url

    # -- run ---------------------------------------------------------------------------------
    def loop(self) -> None:
        assert self.summary is not None
        deadline = (time.monotonic() + self.opts.duration) if self.opts.duration > 0 else None
        self.display.start()
        while True:
            timeout = self.opts.interval
            if deadline is not None:
                timeout = max(0.0, min(timeout, deadline - time.monotonic()))
            if self.stop.event.wait(timeout):
                return
            for child in self.children:
                if not child.alive():
                    raise DemoFailure(
                        f"{child.name} exited unexpectedly with code {child.returncode()}; "
                        f"last lines of {self._rel(child.log_path)}:\n{child.log_tail()}", 1)
                child.track()
            self.display.update(self.summary.snapshot())
            if deadline is not None and time.monotonic() >= deadline:
                return

    # -- stop --------------------------------------------------------------------------------
    def shutdown(self) -> None:
        self.display.stop()
        if self.workload is not None:
            self.workload.stop()
        if self.children:
            self.display.info("stopping worker and beat (SIGTERM; Ctrl-C again to force)...")
        for child in self.children:
            child.terminate()
        for child in self.children:
            how = child.wait(STOP_TIMEOUT, lambda: self.stop.urgent)
            self.display.info(f"{child.name} (pid {child.pid}) {how}")
        from celery_warden.warden import Warden

        installed = Warden.installed_on(self.app) if self.app is not None else None
        if installed is not None:
            installed.recorder.stop(timeout=2.0)
        final = self.summary.snapshot(final=True) if self.summary else None
        if self.embedded is not None:
            self.embedded.stop()
            self.display.info(f"embedded Redis stopped (data kept in {self._rel(self.data_dir)}/)")
        if final is not None:
            self.display.final(final)
        self.display.info(f"logs: {self._rel(self.logs)}/")
        if self._log_handler is not None:
            logging.getLogger().removeHandler(self._log_handler)
            self._log_handler.close()

    def run(self) -> int:
        try:
            self.start()
            if not self.stop.event.is_set():
                self.loop()
        except DemoFailure as exc:
            self.display.stop()
            error(str(exc))
            self.code = exc.code
        except SettingsError as exc:
            self.display.stop()
            error(str(exc))
            self.code = 2
        finally:
            self.shutdown()
        return self.code


def run_demo(opts: DemoOptions) -> int:
    """Run the demo; returns the exit code."""
    try:
        load_settings()
    except SettingsError as exc:
        error(str(exc))
        return 2
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)  # as `celery -A` does: the app lives in the current directory
    if not app_importable(opts.app):
        error(f"cannot import the app {opts.app!r} from {cwd}: run `warden demo` from the "
              "repository root (where the app/ package is), or pass --app with the module "
              "of your Celery app.")
        return 2
    stop = StopFlag()
    restore = stop.install()
    try:
        return Demo(opts, stop).run()
    finally:
        restore()


__all__ = ["DemoOptions", "run_demo"]
