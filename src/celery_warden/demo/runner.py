"""The demo itself: start Redis, worker, beat and workload, refresh the summary, stop in order."""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from celery_warden.alerts.engine import Evaluator
from celery_warden.alerts.rulefile import RuleError
from celery_warden.alerts.view import AlertsView
from celery_warden.config import QUEUES, queue_name
from celery_warden.demo.app_loader import app_importable, load_app
from celery_warden.demo.children import STOP_TIMEOUT, Child
from celery_warden.demo.display import Display, error
from celery_warden.demo.errors import DemoFailure
from celery_warden.demo.server import DEFAULT_PORT, pick_port, server_child, url
from celery_warden.demo.stop import StopFlag
from celery_warden.demo.summary import Summary
from celery_warden.demo.workload import MIX, Workload
from celery_warden.embedded import EmbeddedRedis, answers, resolve_redis
from celery_warden.errors import EmbeddedRedisError, SettingsError
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.redaction import mask_url
from celery_warden.settings import WardenSettings, load_settings
from celery_warden.warden import Warden

if TYPE_CHECKING:
    from celery import Celery

#: Task-record TTL for the demo unless WARDEN_TASK_TTL is set (see the package docstring).
DEMO_TASK_TTL = "3600"
#: Worker/beat log level unless CELERY_LOG_LEVEL is set: INFO logs two lines per task.
DEMO_LOG_LEVEL = "WARNING"


@dataclass(frozen=True)
class DemoOptions:
    duration: float = 0.0
    rate: float = 20.0
    concurrency: int = 2
    app: str = "app.worker.celery_app"
    data_dir: Path = Path(".warden")
    interval: float = 2.0
    #: API server port (``0``: no server); a taken port falls back to a free one.
    port: int = DEFAULT_PORT


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
        self.evaluator: Evaluator | None = None
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
        installed = Warden.installed_on(self.app)
        if installed is not None:
            settings = installed.settings
        queues = [queue_name(settings, q) for q in QUEUES]
        monitor = CeleryMonitor(settings, app=self.app)
        self.summary = Summary(monitor, queues, None, AlertsView(settings, client=monitor.redis))
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
        started = [worker, beat]
        port = pick_port(self.opts.port) if self.opts.port else 0
        if port:
            started.append(server_child(self.opts.app, port, env, self.cwd,
                                        self.logs / "server.log"))
        for child in started:
            child.start()
            self.children.append(child)
            self.display.info(f"{child.name}: pid {child.pid}, log {self._rel(child.log_path)}")
        self.display.info(f"worker queues: {', '.join(queues)}; concurrency "
                          f"{self.opts.concurrency}; task records kept "
                          f"{settings.task_ttl}s (WARDEN_TASK_TTL)")
        if not log_level_set:
            self.display.info(f"worker/beat log level {DEMO_LOG_LEVEL} (CELERY_LOG_LEVEL=INFO "
                              "logs every task)")
        if port:
            self.display.info(f"API: {url(port)}/api/docs — reads open without a token on "
                              "loopback (WARDEN_API_OPEN_READS=true); mutations need one: "
                              "warden token create --scope operate --name me")
        self._alerts(settings)
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

    def _alerts(self, settings: WardenSettings) -> None:
        """The fleet's alert evaluator, in this process (the lease lets only one of it, `warden
        alerts run` and beat's round notify): `always_fails` soon fires the failure-rate
        alert, seen in the summary, `warden alerts list` and the log."""
        try:
            self.evaluator = Evaluator(settings, app=self.app).start()
        except RuleError as exc:
            self.display.info(f"alerts: not evaluated: {exc}")
            return
        notifiers = ", ".join(f"{n.name} ({n.target})" for n in self.evaluator.notifiers)
        self.display.info(f"alerts: evaluated every {settings.alert_interval:g}s, notifying "
                          f"{notifiers or 'nobody'} (warden alerts list)")

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
            self.display.info(f"Redis: {mask_url(url)} (from REDIS_URL)")
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
        if self.evaluator is not None:
            self.evaluator.close()
        if self.workload is not None:
            self.workload.stop()
        if self.children:
            names = ", ".join(c.name for c in self.children)
            self.display.info(f"stopping {names} (SIGTERM; Ctrl-C again to force)...")
        for child in self.children:
            child.terminate()
        for child in self.children:
            how = child.wait(STOP_TIMEOUT, lambda: self.stop.urgent)
            self.display.info(f"{child.name} (pid {child.pid}) {how}")
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
