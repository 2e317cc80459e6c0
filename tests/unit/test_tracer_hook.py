"""The pool child's tracer hook records what the task_prerun / task_postrun handlers recorded.

Each test runs a task the way a prefork pool child does — ``fast_trace_task`` on the request
dict the worker's main process builds, with the tracer Celery built — once through Warden's
signal handlers and once through the hook that ``worker_process_init`` installs, against real
Redis (the retry and deferral re-publish to the test's own broker prefix), and compares the
records the monitor reads back.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery, signals
from celery.app.trace import (
    build_tracer,
    fast_trace_task,
    reset_worker_optimizations,
    setup_worker_optimizations,
)
from celery.exceptions import Ignore, Reject

from celery_warden import Warden, celery_config
from celery_warden.fleet.deferral import defer
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.record.tracer_hook import MARK
from celery_warden.settings import WardenSettings

HOST = "hook-test@localhost"
#: Fields that differ between two runs of one task by timing or ids alone (the re-publish of a
#: retry or a deferral names its parent, the task itself, and an ETA).
TIMING = {"sent_at", "received_at", "started_at", "finished_at", "runtime", "queue_wait",
          "updated_at", "pid", "task_id", "id", "duration", "parent_id", "root_id", "eta"}


def make_app(settings: WardenSettings) -> tuple[Celery, Warden]:
    app = Celery("hook-test", set_as_current=False)
    app.conf.update(celery_config(settings))

    @app.task(name="hook.ok", ignore_result=True, shared=False)
    def ok(x: int) -> int:
        return x

    @app.task(name="hook.fail", ignore_result=True, shared=False)
    def fail() -> None:
        raise ValueError("boom")

    @app.task(name="hook.retry", bind=True, ignore_result=True, shared=False,
              max_retries=3)
    def retry(self: Any) -> None:
        raise self.retry(countdown=60)

    @app.task(name="hook.defer", bind=True, ignore_result=True, shared=False)
    def deferred(self: Any) -> None:
        defer(self, 60.0, "breaker open", max_defer=120.0)

    @app.task(name="hook.ignore", ignore_result=True, shared=False)
    def ignore() -> None:
        raise Ignore()

    @app.task(name="hook.reject", ignore_result=True, shared=False)
    def reject() -> None:
        raise Reject("no", requeue=False)

    return app, Warden(app, settings)


@contextmanager
def pool_child(settings: WardenSettings, hook: bool) -> Iterator[tuple[Celery, Warden]]:
    """An app set up as a prefork pool child: tracers built, then (``hook``) the
    ``worker_process_init`` Celery sends after building them."""
    app, warden = make_app(settings)
    setup_worker_optimizations(app, HOST)
    for name, task in app.tasks.items():
        task.__trace__ = build_tracer(name, task, app.loader, HOST, app=app)
    try:
        if hook:
            warden.handlers.on_process_init(sender=HOST)
        yield app, warden
    finally:
        warden.uninstall()
        reset_worker_optimizations(app)


def run(app: Celery, name: str, args: list[Any] | None = None) -> str:
    """One task through ``fast_trace_task`` as a pool child receives it."""
    tid = str(uuid.uuid4())
    now = time.time()
    rd = {"lang": "py", "task": name, "id": tid, "root_id": tid, "parent_id": None,
          "group": None, "retries": 0, "eta": None, "expires": None, "timelimit": [None, None],
          "warden_sent": now - 0.05, "warden_received": now - 0.01, "correlation_id": tid,
          "reply_to": None, "properties": {}, "hostname": HOST,
          "delivery_info": {"exchange": "", "routing_key": "hook-q", "priority": 5,
                            "redelivered": False}}
    body = json.dumps([args or [], {}, {"callbacks": None, "errbacks": None, "chain": None,
                                        "chord": None}])
    fast_trace_task(name, tid, rd, body, "application/json", "utf-8")
    return tid


def mine(warden: Warden, signal: Any) -> list[Any]:
    """This Warden's receivers of ``signal`` (other tests' Wardens may still be connected in
    this process: their dispatch uids carry another id)."""
    tag = f"celery_warden:{id(warden.handlers)}:"
    return [r for r in signal.receivers if str(r[0][0]).startswith(tag)]


def outcomes(app: Celery, warden: Warden) -> dict[str, dict[str, Any]]:
    ids = {name: run(app, name, [7] if name == "hook.ok" else None)
           for name in ("hook.ok", "hook.fail", "hook.retry", "hook.defer", "hook.ignore",
                        "hook.reject")}
    warden.recorder.flush()
    monitor = CeleryMonitor(warden.settings, app=app)
    out = {}
    for name, tid in ids.items():
        status = monitor.get_task_status(tid)
        out[name] = {k: v for k, v in status.items() if k not in TIMING}
        assert status["runtime"] is not None and status["runtime"] >= 0, status
        assert status["queue_wait"] is not None and 0.04 <= status["queue_wait"] < 5, status
    counts = {name: monitor.get_performance_stats(name, "10m")["count"] for name in ids}
    out["_counts"] = counts
    return out


def test_the_hook_records_what_the_signal_handlers_record(settings_factory, tmp_path):
    """Success, failure (with its exception), retry, deferral (DEFERRED with the guard's
    reason), Ignore and Reject come out identical through the signal handlers and through the
    hook, and with the hook Warden has no task_prerun / task_postrun receiver left in the
    process, so Celery's tracer skips both dispatches."""
    got = {}
    for hook in (False, True):
        settings = settings_factory(WARDEN_SPOOL_DIR=str(tmp_path / f"spool-{hook}"))
        with pool_child(settings, hook) as (app, warden):
            assert (getattr(app.tasks["hook.ok"].__trace__, MARK, None) is not None) == hook
            ours = mine(warden, signals.task_prerun) + mine(warden, signals.task_postrun)
            assert bool(ours) != hook, ours
            got[hook] = outcomes(app, warden)
    signal_path = got[False]
    assert signal_path["hook.ok"]["state"] == "SUCCESS"
    assert signal_path["hook.ok"]["worker"] == HOST and signal_path["hook.ok"]["queue"] == "hook-q"
    assert signal_path["hook.ok"]["args"] == [7]
    assert signal_path["hook.fail"]["state"] == "FAILURE"
    assert signal_path["hook.fail"]["error"] == {"type": "ValueError", "message": "boom"}
    assert signal_path["hook.retry"]["state"] == "RETRY"
    assert signal_path["hook.defer"]["state"] == "DEFERRED"
    assert signal_path["hook.defer"]["reason"] == "breaker open"
    assert signal_path["hook.ignore"]["state"] == "IGNORED"
    assert signal_path["hook.reject"]["state"] == "REJECTED"
    assert signal_path["_counts"] == {"hook.ok": 1, "hook.fail": 1, "hook.retry": 0,
                                      "hook.defer": 0, "hook.ignore": 1, "hook.reject": 1}
    assert got[True] == signal_path


def test_with_the_performance_line_on_task_postrun_stays_for_it_alone(settings, tmp_path):
    """At INFO (``celery -l INFO``) the hook still records, task_prerun is gone, and
    task_postrun stays only to log the performance line inside the task's context (the JSON
    log's task fields come from ``current_task``): one line per task, with the final state."""
    import logging

    from celery import current_task

    seen: list[tuple[str, Any, Any]] = []

    class Probe(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            req = getattr(current_task, "request", None)
            seen.append((record.__dict__.get("state"), getattr(req, "id", None),
                         record.__dict__.get("worker")))

    perf = logging.getLogger("celery_warden.perf")
    old, probe = perf.level, Probe()
    perf.setLevel(logging.INFO)
    perf.addHandler(probe)
    try:
        with pool_child(settings, hook=True) as (app, warden):
            assert getattr(app.tasks["hook.ok"].__trace__, MARK, None) is not None
            assert not mine(warden, signals.task_prerun)
            assert mine(warden, signals.task_postrun)
            ok, deferred = run(app, "hook.ok", [1]), run(app, "hook.defer")
            warden.recorder.flush()
            monitor = CeleryMonitor(warden.settings, app=app)
            assert monitor.get_task_status(ok)["state"] == "SUCCESS"
            assert monitor.get_task_status(deferred)["state"] == "DEFERRED"
            assert monitor.get_performance_stats("hook.ok", "10m")["count"] == 1
    finally:
        perf.removeHandler(probe)
        perf.setLevel(old)
    assert seen == [("SUCCESS", ok, HOST), ("DEFERRED", deferred, HOST)]
