"""Handlers that run in the pool child executing a task: prerun, postrun, retry, failure.

Cost on the task's path (measured by ``bench/tracer.py``): prerun keeps the raw facts in a
:class:`Run`; postrun hands them to the recorder in one call; formatting, argument previews and
the STARTED record (only for tasks still running at a flush) happen on the flusher thread.

``task_postrun`` carries ``state=None`` when the body did not finish in this process (a hard time
limit or ``revoke(terminate=True)`` ends the child; an internal error): ``task_failure`` /
``task_revoked`` in the main process report that outcome, so postrun records nothing then.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from celery_warden import headers as h
from celery_warden.logs.perf import task_finished
from celery_warden.record.batch import Preview
from celery_warden.record.facts import epoch, exc_fields
from celery_warden.record.order import FINAL_STATES, RANK_FINAL, RANK_RETRY
from celery_warden.record.ports import FailureSink
from celery_warden.record.recorder import Recorder
from celery_warden.services import Services


class Run:
    """What a pool child knows about a task between its start and its end, kept raw.

    The recorder asks for :meth:`start_fields` only when it writes the record — at the end of
    the task, or at a flush while it still runs — so formatting and argument previews never
    happen on the task's path. Built from the request dict Celery's tracer is called with
    (:func:`run_from_dict`, the tracer hook) or from the task's request context
    (:func:`run_from_context`, the ``task_prerun`` signal).
    """

    __slots__ = ("args", "defers", "exc", "flushed", "kwargs", "mono", "name", "pid", "queue",
                 "received", "retries", "started", "wait", "worker")

    def __init__(self, started: float, mono: float, wait: float | None, name: str, worker: str,
                 pid: int, retries: int, defers: int, queue: str, received: float | None,
                 args: Any, kwargs: Any) -> None:
        self.started = started
        self.mono = mono
        self.wait = wait
        self.exc: dict[str, str] | None = None
        self.flushed = False
        self.name = name
        self.worker = worker
        self.pid = pid
        self.retries = retries
        self.defers = defers
        self.queue = queue
        self.received = received
        self.args = args  # read again only when the record is written (previews)
        self.kwargs = kwargs

    def start_fields(self) -> tuple[dict[str, Any], dict[str, Any], int, int]:
        static: dict[str, Any] = {
            "name": self.name, "queue": self.queue or None,
            # Redacted, size-bounded previews for get_task_status (formatted by the store);
            # the message itself is untouched.
            "args": Preview(self.args, "[]"), "kwargs": Preview(self.kwargs, "{}"),
        }
        attempt: dict[str, Any] = {
            "state": "STARTED", "started": self.started, "worker": self.worker, "pid": self.pid,
            "received": self.received, "wait": self.wait, "retries": self.retries,
        }
        return static, attempt, self.retries, self.defers

    @property
    def counts_received(self) -> bool:
        """A delivery the worker's main process stamped on receipt is counted as received with
        its end, here (record/worker.py: the main process counts no receipt itself)."""
        return self.received is not None

    def facts(self) -> tuple[Any, ...]:
        """What the spool keeps to rebuild the record (``replay.ReplayRun``; no previews)."""
        return (self.queue, self.worker, self.pid, self.started, self.received, self.retries,
                self.defers, self.wait, self.counts_received)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def run_from_dict(rd: dict[str, Any], name: str, hostname: str, pid: int) -> Run:
    """A run from the request dict the worker's main process built (the tracer hook's view:
    Warden's headers are top-level keys, ``args``/``kwargs`` set by ``fast_trace_task``)."""
    now = time.time()
    sent = rd.get(h.SENT)
    return Run(now, time.monotonic(),
               None if sent is None else wait_since(sent, rd.get("eta"), now),
               name, rd.get("hostname") or hostname, pid, int(rd.get("retries") or 0),
               # h.defers() in full only when the header could be there (it rarely is).
               h.defers(rd) if rd.get(h.DEFERS) is not None or rd.get("headers") else 0,
               (rd.get("delivery_info") or {}).get("routing_key") or "",
               _float(rd.get(h.RECEIVED)), rd.get("args"), rd.get("kwargs"))


def run_from_context(req: Any, name: str, hostname: str, pid: int) -> Run:
    """A run from the task's request context (the ``task_prerun`` signal's view)."""
    now = time.time()
    sent = getattr(req, h.SENT, None)
    return Run(now, time.monotonic(),
               None if sent is None else wait_since(sent, req.eta, now),
               name, req.hostname or hostname, pid, int(req.retries or 0),
               h.defers(req) if getattr(req, h.DEFERS, None) is not None
               or getattr(req, "headers", None) else 0,
               (req.delivery_info or {}).get("routing_key") or "",
               _float(getattr(req, h.RECEIVED, None)), req.args, req.kwargs)


def wait_since(sent: Any, eta: Any, now: float) -> float | None:
    """Seconds from publish (or the ETA, when later) to ``now``; None for a bad send stamp."""
    try:
        ready = float(sent)
    except (TypeError, ValueError):
        return None
    if eta:
        ready = max(ready, epoch(eta) or 0.0)
    return max(0.0, now - ready)


def queue_wait(req: Any, now: float) -> float | None:
    """Seconds from publish (or the ETA, when later) to start; None without a send stamp."""
    sent = getattr(req, h.SENT, None)
    return None if sent is None else wait_since(sent, req.eta, now)


class ChildHandlers:
    """Task execution signals of one Warden's app, in the process running the task."""

    def __init__(self, services: Services, recorder: Recorder, failures: FailureSink) -> None:
        self.app = services.app
        self.redactor = services.redactor
        self.recorder = recorder
        self.failures = failures
        self.hostname = socket.gethostname()
        self._pid = os.getpid()
        self.runs: dict[str, Run] = {}
        #: Whether the tracer hook records this process's tasks (:mod:`.tracer_hook`): a
        #: ``task_postrun`` still connected then only logs the performance line.
        self.hooked = False

    def running(self, task_id: str | None) -> bool:
        """Whether a task with this id runs in this process (its outcome is reported here)."""
        return task_id is not None and task_id in self.runs

    def on_prerun(self, sender: Any = None, task_id: str | None = None, task: Any = None,
                  **_: Any) -> None:
        if task is None or task_id is None or getattr(task, "app", None) is not self.app:
            return
        self.begin(task_id, run_from_context(task.request, task.name, self.hostname, self._pid))

    def begin_request(self, task_id: str, rd: dict[str, Any], name: str) -> None:
        """A task of this app starts here, seen from the request dict (the tracer hook)."""
        self.begin(task_id, run_from_dict(rd, name, self.hostname, self._pid))

    def begin(self, task_id: str, run: Run) -> None:
        """A task of this app starts here (``task_prerun``, or the tracer hook)."""
        self.runs[task_id] = run
        self.recorder.begin(task_id, run)

    def on_retry(self, sender: Any = None, request: Any = None, reason: Any = None,
                 **_: Any) -> None:
        run = self.runs.get(getattr(request, "id", None) or "")
        if run is not None and isinstance(reason, BaseException):
            run.exc = exc_fields(reason, self.redactor)

    def on_failure(self, sender: Any, task_id: str, exception: BaseException | None,
                   einfo: Any) -> None:
        """A task running here raised (``task_postrun`` finalizes the record)."""
        run = self.runs[task_id]
        run.exc = exc_fields(exception, self.redactor)
        self.failures.child_failure(sender, exception, einfo)

    def on_postrun(self, sender: Any = None, task_id: str | None = None, task: Any = None,
                   state: str | None = None, **_: Any) -> None:
        if task_id is None or task is None:
            return
        # The request a guard marked (fleet.deferral) is the context still pushed now.
        deferred = getattr(task.request, h.DEFERRED_ATTR, None)
        if self.hooked:  # the hook records; the performance line needs this context
            run = self.runs.get(task_id)
            if run is not None and state is not None:
                task_finished(task, "DEFERRED" if state == "IGNORED" and deferred else state,
                              time.monotonic() - run.mono, run.wait, run.retries, run.worker)
            return
        run = self.runs.pop(task_id, None)
        if run is None:
            return
        self.end(task_id, run, task, state, deferred)

    def end(self, task_id: str, run: Run, task: Any, state: str | None,
            deferred: Any = None) -> None:
        """A task that started here ended with ``state`` (``task_postrun``, or the tracer hook;
        the caller popped ``run`` from :attr:`runs`). ``deferred``: the reason a guard gave
        when it re-scheduled this delivery (an ``IGNORED`` state then means ``DEFERRED``)."""
        if state is None:  # see the module docstring: another signal reports this outcome
            self.recorder.forget(task_id)
            return
        now = time.time()
        runtime = time.monotonic() - run.mono
        final: dict[str, Any] = {"state": state, "finished": now, "runtime": runtime}
        if state == "IGNORED" and deferred:
            # A guard (circuit breaker, fleet rate limit) re-scheduled this delivery.
            state = final["state"] = "DEFERRED"
            final["reason"] = str(deferred)
        if run.exc and state != "SUCCESS":
            final.update(run.exc)
        rank = RANK_FINAL if state in FINAL_STATES else RANK_RETRY
        self.recorder.end(task_id, run, task.name, final, rank, state.lower(), now, runtime,
                          run.wait)
        if not self.hooked:  # (with the hook, task_postrun logs it inside the task's context)
            task_finished(task, state, runtime, run.wait, run.retries, run.worker)

    def on_process_init(self, sender: Any = None, **_: Any) -> None:
        self._pid = os.getpid()
        self.runs.clear()
        self.recorder.restart()
        self.recorder.enable_spool()  # what this child buffers survives its death

    def on_process_shutdown(self, sender: Any = None, **_: Any) -> None:
        self.recorder.stop(timeout=2.0)


__all__ = ["ChildHandlers", "Run", "queue_wait", "run_from_context", "run_from_dict", "wait_since"]
