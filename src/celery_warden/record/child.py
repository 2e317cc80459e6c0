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
    """What a pool child knows about a task between prerun and postrun, kept raw.

    The recorder asks for :meth:`start_fields` only when it writes the record — at the end of
    the task, or at a flush while it still runs — so formatting and argument previews never
    happen on the task's path.
    """

    __slots__ = ("defers", "exc", "flushed", "mono", "name", "pid", "queue", "req", "retries",
                 "started", "wait", "worker")

    def __init__(self, started: float, mono: float, wait: float | None, req: Any,
                 name: str, worker: str, pid: int) -> None:
        self.started = started
        self.mono = mono
        self.wait = wait
        self.exc: dict[str, str] | None = None
        self.flushed = False
        self.name = name
        self.worker = worker
        self.pid = pid
        self.req = req  # the request context; read again only when the record is written
        self.retries = int(req.retries or 0)
        # h.defers() in full only when the header could be there (it rarely is).
        self.defers = (h.defers(req) if getattr(req, h.DEFERS, None) is not None
                       or getattr(req, "headers", None) else 0)
        self.queue: str = (req.delivery_info or {}).get("routing_key") or ""

    def start_fields(self) -> tuple[dict[str, Any], dict[str, Any], int, int]:
        req = self.req
        received = getattr(req, h.RECEIVED, None)
        static: dict[str, Any] = {
            "name": self.name, "queue": self.queue or None,
            # Redacted, size-bounded previews for get_task_status (formatted by the store);
            # the message itself is untouched.
            "args": Preview(req.args, "[]"), "kwargs": Preview(req.kwargs, "{}"),
        }
        attempt: dict[str, Any] = {
            "state": "STARTED", "started": self.started, "worker": self.worker, "pid": self.pid,
            "received": None if received is None else float(received), "wait": self.wait,
            "retries": self.retries,
        }
        return static, attempt, self.retries, self.defers

    def facts(self) -> tuple[Any, ...]:
        """What the spool keeps to rebuild the record (``replay.ReplayRun``; no previews)."""
        received = getattr(self.req, h.RECEIVED, None)
        return (self.queue, self.worker, self.pid, self.started,
                None if received is None else float(received), self.retries, self.defers,
                self.wait)


def queue_wait(req: Any, now: float) -> float | None:
    """Seconds from publish (or the ETA, when later) to start; None without a send stamp."""
    sent = getattr(req, h.SENT, None)
    if sent is None:
        return None
    try:
        ready = float(sent)
    except (TypeError, ValueError):
        return None
    if req.eta:
        ready = max(ready, epoch(req.eta) or 0.0)
    return max(0.0, now - ready)


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

    def running(self, task_id: str | None) -> bool:
        """Whether a task with this id runs in this process (its outcome is reported here)."""
        return task_id is not None and task_id in self.runs

    def on_prerun(self, sender: Any = None, task_id: str | None = None, task: Any = None,
                  **_: Any) -> None:
        if task is None or task_id is None or getattr(task, "app", None) is not self.app:
            return
        now = time.time()
        req = task.request
        run = Run(now, time.monotonic(), queue_wait(req, now), req, task.name,
                  req.hostname or self.hostname, self._pid)
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
        run = self.runs.pop(task_id, None)
        if run is None or state is None:
            if run is not None:
                self.recorder.forget(task_id)
            return  # see the module docstring: another signal reports this outcome
        now = time.time()
        runtime = time.monotonic() - run.mono
        final: dict[str, Any] = {"state": state, "finished": now, "runtime": runtime}
        deferred = getattr(run.req, h.DEFERRED_ATTR, None)  # the request a guard marked
        if state == "IGNORED" and deferred:
            # A guard (circuit breaker, fleet rate limit) re-scheduled this delivery.
            state = final["state"] = "DEFERRED"
            final["reason"] = str(deferred)
        if run.exc and state != "SUCCESS":
            final.update(run.exc)
        rank = RANK_FINAL if state in FINAL_STATES else RANK_RETRY
        self.recorder.end(task_id, run, task.name, final, rank, state.lower(), now, runtime,
                          run.wait)
        task_finished(task, state, runtime, run.wait, run.retries)  # the performance log line

    def on_process_init(self, sender: Any = None, **_: Any) -> None:
        self._pid = os.getpid()
        self.runs.clear()
        self.recorder.restart()
        self.recorder.enable_spool()  # what this child buffers survives its death

    def on_process_shutdown(self, sender: Any = None, **_: Any) -> None:
        self.recorder.stop(timeout=2.0)


__all__ = ["ChildHandlers", "Run", "queue_wait"]
