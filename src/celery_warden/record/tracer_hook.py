"""A pool child's per-task hook: Celery's tracer wrapped once per task type, no signals.

Why: a prefork pool child pays, per task, for two signal dispatches (``task_prerun`` and
``task_postrun``: ``Signal.send`` takes a lock, walks and filters its receivers, calls Warden's
guarded handler with keyword arguments) on caches gone cold while it slept between tasks;
``bench/child_path.py`` measured that at several µs of the task thread's CPU per task. Celery's
tracer (``celery.app.trace.build_tracer``) dispatches a signal only when that signal has
receivers, so wrapping each task's tracer and disconnecting Warden's two receivers in the child
makes both dispatches vanish when nobody else listens.

Where: installed by ``worker_process_init`` (:mod:`.signals`), which Celery's prefork
``process_initializer`` sends right after building every task's tracer. Other pools (solo,
threads, eventlet) never send it and keep the signals, as do eager calls. While
``celery_warden.perf`` logs at INFO (``-l INFO``), ``task_postrun`` stays connected for that
line alone: it needs the task's context (``logs.context`` reads ``current_task``; an
OpenTelemetry span ends at ``task_postrun``), which only exists inside the tracer.

The facts are the ones the signals gave: the start from the request dict the tracer is called
with (:func:`~celery_warden.record.child.run_from_dict`); the end from what the tracer returns,
``trace_ok_t(R, I, T, Rstr)``: ``I`` is None on success (``T``, the runtime, is then set; both
None when Celery skipped a redelivered task that already succeeded: no ``task_prerun`` then
either, so nothing is recorded), else ``I.state`` is the state ``task_postrun`` carries
(FAILURE, RETRY, IGNORED, REJECTED) and, for IGNORED, ``I.retval`` is the ``Ignore`` a guard
marked when it re-scheduled the delivery (:mod:`celery_warden.fleet.deferral`). An exception
out of the tracer (``Reject``, ``BaseException``) is what ``task_postrun`` reported with
``state=None``: the outcome is reported elsewhere, the run forgotten. One deliberate
difference: an error Celery raises *after* storing a success (the result backend failing in
``mark_as_done``) made ``task_postrun`` say SUCCESS and ``task_failure`` then FAILURE; the hook
records the FAILURE Celery returns, once.

A monitoring fault never reaches the task: both halves are guarded, logged under the names of
the handlers they replace (``ChildHandlers.on_prerun`` / ``on_postrun``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery_warden import headers as h
from celery_warden.isolation import throttle
from celery_warden.logs import perf
from celery_warden.record.child import ChildHandlers

#: Names a fault in each half is logged under (the signal handlers the hook replaces).
BEGIN_NAME = "ChildHandlers.on_prerun"
END_NAME = "ChildHandlers.on_postrun"
#: Attribute marking a tracer this module wrapped (holding the hook that wrapped it).
MARK = "_warden_hook"

Tracer = Callable[..., Any]


class TracerHook:
    """Wraps every task tracer of one app in this process with a child's begin and end."""

    def __init__(self, app: Any, child: ChildHandlers) -> None:
        self.app = app
        self.child = child
        self.installed = False

    def install(self) -> bool:
        """Wrap the tracers of all the app's tasks; False (nothing wrapped) when one task has
        no tracer yet."""
        tasks = list(self.app.tasks.values())
        if not tasks or any(getattr(t, "__trace__", None) is None for t in tasks):
            return False
        for task in tasks:
            trace = task.__trace__
            if getattr(trace, MARK, None) is not self:
                task.__trace__ = self.wrap(task, trace)
        self.installed = self.child.hooked = True
        return True

    @staticmethod
    def perf_line() -> bool:
        """Whether the performance line is logged (then ``task_postrun`` stays for it)."""
        return perf.logger.isEnabledFor(logging.INFO)

    def uninstall(self) -> None:
        """Give every task its own tracer back."""
        for task in list(self.app.tasks.values()):
            trace = getattr(task, "__trace__", None)
            if getattr(trace, MARK, None) is self:
                task.__trace__ = trace.__wrapped__  # type: ignore[union-attr]
        self.installed = self.child.hooked = False

    def wrap(self, task: Any, trace: Tracer) -> Tracer:
        """``trace`` with the child's begin before and end after (see the module docstring)."""
        name = task.name
        begin, end, runs, report = self.child.begin_request, self.child.end, self.child.runs, (
            throttle.report)

        def traced(uuid: str, args: Any, kwargs: Any, request: Any = None) -> Any:
            try:
                begin(uuid, request, name)
            except Exception:
                report(BEGIN_NAME)
            try:
                ret = trace(uuid, args, kwargs, request)
            except BaseException:
                forget(uuid)
                raise
            try:
                run = runs.pop(uuid, None)  # absent: the begin failed before keeping it
                if run is not None:
                    info = ret[1]
                    if info is None:
                        end(uuid, run, task, "SUCCESS" if ret[2] is not None else None)
                    elif info.state == "IGNORED":
                        end(uuid, run, task, "IGNORED",
                            getattr(info.retval, h.DEFERRED_ATTR, None))
                    else:
                        end(uuid, run, task, info.state)
            except Exception:
                report(END_NAME)
            return ret

        def forget(uuid: str) -> None:
            try:
                run = runs.pop(uuid, None)
                if run is not None:
                    end(uuid, run, task, None)
            except Exception:
                report(END_NAME)

        traced.__wrapped__ = trace  # type: ignore[attr-defined]
        setattr(traced, MARK, self)
        return traced


__all__ = ["BEGIN_NAME", "END_NAME", "MARK", "TracerHook"]
