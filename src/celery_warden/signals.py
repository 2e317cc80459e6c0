"""Celery signal handlers: turn lifecycle events into recorder calls.

Which process runs which signal under the prefork pool (checked against Celery 5.7 sources and
pinned by ``tests/integration/test_signals.py``):

==========================================  ===========================  =====================
signal                                      process                      what Warden does
==========================================  ===========================  =====================
before_task_publish / after_task_publish    the publisher (client, a     priority, SENT time
                                            task in a pool child, beat)
task_received                               worker main (consumer)       received time stamped
                                                                         into the request
task_prerun / task_postrun                  pool child                   STARTED, final state
task_retry                                  pool child                   retry reason
task_success                                pool child                   (not connected:
                                                                         postrun has the state)
task_failure                                pool child for exceptions;   FAILURE
                                            **main** for hard time
                                            limits and lost workers
task_revoked                                worker main                  REVOKED
task_rejected / task_unknown                worker main (consumer)       REJECTED
worker_init / worker_ready /                worker main                  worker state
worker_shutting_down
worker_process_init / _shutdown             pool child                   recorder lifecycle
==========================================  ===========================  =====================

Facts the handlers rely on: ``task_failure`` fires twice for one hard time limit in Celery 5.7.0
(each outcome is counted once per ``(task id, retries)``); ``task_postrun`` carries ``state=None``
when the body did not finish (a hard time limit ends the child; the outcome comes from
``task_failure`` in the main process, so postrun records nothing then); handlers are connected with
``weak=False`` so they live as long as the worker; custom message headers ride along on
``retry()``, and the request dict the main process holds is the one passed to the pool child, so
the main process stamps the received time into it and the child writes the whole record once,
without a write from the main process per task.

Cost on the task's path (measured by ``bench/tracer.py``, ~+20-25 µs/task): prerun keeps the
raw facts in a ``_Run``; postrun hands them to the recorder in one call; formatting, argument
previews and the STARTED record (only for tasks still running at a flush) happen on the flusher
thread. ``task_success`` is deliberately not connected: Celery skips a signal's dispatch only when
it has no receivers, and a no-op receiver costs ~2 µs per task.
"""

from __future__ import annotations

import os
import socket
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from celery import signals
from celery.utils.dispatch import Signal

from celery_warden import priority
from celery_warden.failures import FailureCapture
from celery_warden.isolation import guarded
from celery_warden.log_perf import task_finished
from celery_warden.recorder import (
    RANK_FINAL,
    RANK_RECEIVED,
    RANK_RETRY,
    RANK_SENT,
    delivery_seq,
)
from celery_warden.redaction import Redactor
from celery_warden.store import Preview

if TYPE_CHECKING:
    from celery_warden.warden import Warden

#: The app whose ``send_task_message`` is running in this context (set by Warden).
PUBLISHING_APP: ContextVar[Any] = ContextVar("warden_publishing_app", default=None)

#: States that end a delivery (ranked RANK_FINAL in the record ordering).
FINAL_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED", "REJECTED", "IGNORED"})
#: Outcomes remembered per process to count each (task id, attempt) once.
FINALIZED_MEMORY = 20_000
#: Longest exception message kept in a task record.
MAX_MESSAGE = 500

SENT_HEADER = "warden_sent"
RECEIVED_KEY = "warden_received"
#: Times a task was deferred (circuit open, rate limited) without using a retry.
DEFERS_HEADER = "warden_defers"
#: Set on ``task.request`` by a guard that re-scheduled the delivery, before raising Ignore.
DEFERRED_ATTR = "warden_deferred"


def _epoch(value: Any) -> float | None:
    """An ETA header (ISO string) or number as epoch seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def _exc_fields(exc: BaseException | None) -> dict[str, str]:
    if exc is None:
        return {}
    return {"exc_type": type(exc).__name__, "exc_msg": str(exc)[:MAX_MESSAGE]}


def _defers(req: Any) -> int:
    """Deferral count of a delivery, from a task request (Context) or a request dict."""
    if isinstance(req, dict):
        value = req.get(DEFERS_HEADER)
    else:
        value = getattr(req, DEFERS_HEADER, None)
        if value is None and getattr(req, "headers", None):
            value = req.headers.get(DEFERS_HEADER)
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


class _Run:
    """What a pool child knows about a task between prerun and postrun, kept raw.

    The recorder asks for :meth:`start_fields` only when it writes the record — at the end of
    the task, or at a flush while it still runs — so formatting and argument previews never
    happen on the task's path.
    """

    __slots__ = ("defers", "exc", "flushed", "mono", "name", "pid", "req", "retries", "started",
                 "wait", "worker")

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
        self.defers = _defers(req)

    def start_fields(self) -> tuple[dict[str, Any], dict[str, Any], int, int]:
        req = self.req
        received = getattr(req, RECEIVED_KEY, None)
        static: dict[str, Any] = {
            "name": self.name, "queue": (req.delivery_info or {}).get("routing_key"),
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


class _Bounded(OrderedDict[Any, Any]):
    """An insertion-ordered dict that forgets its oldest entries past ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        if len(self) > self.limit:
            self.popitem(last=False)


class SignalHandlers:
    """Owns the handler functions for one :class:`~celery_warden.warden.Warden`."""

    def __init__(self, warden: Warden) -> None:
        self.warden = warden
        self.app = warden.app
        self.recorder = warden.recorder
        self.settings = warden.settings
        self.redactor = Redactor(self.settings.redact_keys)
        self._pid = os.getpid()
        self.hostname = socket.gethostname()
        self._runs: dict[str, _Run] = {}
        self._finalized = _Bounded(FINALIZED_MEMORY)
        # Requests this worker holds (for outcomes the main process reports itself); entries
        # vanish with the Request object, so no bound or clean-up is needed.
        self._requests: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
        self._connected: list[tuple[Signal, Callable[..., Any], str]] = []
        self.failures = FailureCapture(warden)

    # -- wiring ----------------------------------------------------------------------------
    def table(self) -> list[tuple[Signal, Callable[..., Any]]]:
        return [
            (signals.before_task_publish, self.on_before_publish),
            (signals.after_task_publish, self.on_after_publish),
            (signals.task_received, self.on_received),
            (signals.task_prerun, self.on_prerun),
            (signals.task_postrun, self.on_postrun),
            (signals.task_retry, self.on_retry),
            (signals.task_failure, self.on_failure),
            (signals.task_revoked, self.on_revoked),
            (signals.task_rejected, self.on_rejected),
            (signals.task_unknown, self.on_unknown),
            (signals.worker_init, self.on_worker_init),
            (signals.worker_ready, self.on_worker_ready),
            (signals.worker_shutting_down, self.on_worker_shutting_down),
            (signals.worker_process_init, self.on_process_init),
            (signals.worker_process_shutdown, self.on_process_shutdown),
        ]

    def connect(self) -> None:
        for sig, fn in self.table():
            uid = f"celery_warden:{id(self)}:{fn.__name__}"
            handler = guarded(fn)
            sig.connect(handler, weak=False, dispatch_uid=uid)
            self._connected.append((sig, handler, uid))

    def disconnect(self) -> None:
        for sig, handler, uid in self._connected:
            sig.disconnect(handler, dispatch_uid=uid)
        self._connected.clear()

    def _exc_fields(self, exc: BaseException | None) -> dict[str, str]:
        """Exception type and message for a record, secrets in the message masked."""
        fields = _exc_fields(exc)
        if "exc_msg" in fields:
            fields["exc_msg"] = self.redactor.redact_text(fields["exc_msg"])
        return fields

    def _publishing_ours(self) -> bool:
        """Publish signals carry only a task name; the app publishing is known from the
        context variable :class:`~celery_warden.warden.Warden` sets around its app's
        ``send_task_message``, the one path every Celery publish takes. Unset means an app
        without Warden published: not ours (nor any other Warden's)."""
        return PUBLISHING_APP.get() is self.app

    def _ours(self, task: Any) -> bool:
        """Task signals are global in Celery; only handle tasks of our app."""
        return getattr(task, "app", None) is self.app

    # -- publisher -------------------------------------------------------------------------
    def on_before_publish(
        self, sender: Any = None, headers: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None, **_: Any,
    ) -> None:
        if headers is None or properties is None or not self._publishing_ours():
            return
        priority.normalise(headers, properties, self.settings.broker_is_redis)
        headers[SENT_HEADER] = time.time()
        headers.pop(RECEIVED_KEY, None)
        headers.pop("redelivered", None)  # kombu's restore flag must not ride along on retry()

    def on_after_publish(
        self, sender: Any = None, headers: dict[str, Any] | None = None,
        routing_key: str | None = None, exchange: str | None = None, **_: Any,
    ) -> None:
        if not self.settings.track_sent or not headers or "id" not in headers:
            return
        if not self._publishing_ours():
            return
        sent = headers.get(SENT_HEADER) or time.time()
        static = {
            "name": str(headers.get("task") or sender),
            "queue": str(routing_key or exchange or ""),
            "sent": float(sent),
            "priority": str(headers.get(priority.HEADER, "")),
        }
        for field in ("parent_id", "root_id"):
            if headers.get(field):
                static[field] = str(headers[field])
        eta = _epoch(headers.get("eta"))
        if eta is not None:
            static["eta"] = eta
        retries = int(headers.get("retries") or 0)
        if retries == 0:
            self.recorder.task(headers["id"], static=static, attempt={"state": "SENT"},
                               rank=RANK_SENT)
        else:  # a retry's re-publish: the finishing attempt owns the state (RETRY)
            self.recorder.task(headers["id"], static=static)

    # -- worker main -----------------------------------------------------------------------
    def on_received(self, sender: Any = None, request: Any = None, **_: Any) -> None:
        if request is None or not self._ours(request.task):
            return
        now = time.time()
        rd = request.request_dict
        rd[RECEIVED_KEY] = now
        self._requests[request.id] = request
        if (request.delivery_info or {}).get("redelivered") and self.failures.redelivered(
            request
        ):
            # Poison pill: now in the DLQ; revoke locally so this delivery is acknowledged
            # without running (Request.execute_using_pool checks the revoked set).
            from celery.worker import state as worker_state

            worker_state.revoked.add(request.id)
            return
        if request.eta:  # held in the worker until its ETA: show it as RECEIVED meanwhile
            self.recorder.task(
                request.id,
                attempt={"state": "RECEIVED", "received": now, "worker": request.hostname
                         or self.hostname},
                retries=int(rd.get("retries") or 0), rank=RANK_RECEIVED,
            )

    def _first_outcome(self, task_id: str, seq: int) -> bool:
        key = (task_id, seq)
        if key in self._finalized:
            return False
        self._finalized.put(key, True)
        return True

    def _finish_in_main(self, task: Any, task_id: str, state: str, fields: dict[str, str],
                        context: Any = None) -> bool:
        """Record an outcome the main process saw; False if it was already counted."""
        request = self._requests.get(task_id)  # kept: a second signal for it must dedupe
        rd = request.request_dict if request is not None else {}
        retries = int(getattr(context, "retries", None) or rd.get("retries") or 0)
        defers = _defers(rd)
        if not self._first_outcome(task_id, delivery_seq(retries, defers)):
            return False
        now = time.time()
        attempt: dict[str, Any] = {"state": state, "finished": now, **fields}
        runtime = None
        start = getattr(request, "time_start", None)
        if start:
            runtime = max(0.0, now - start)
            attempt["runtime"] = runtime
        if request is not None and "worker" not in attempt:
            attempt["worker"] = getattr(context, "hostname", None) or self.hostname
        self.recorder.task(task_id, attempt=attempt, retries=retries, rank=RANK_FINAL,
                           defers=defers, static={"name": task.name})
        self.recorder.observe(task.name, now, state.lower(), runtime)
        return True

    def on_revoked(self, sender: Any = None, request: Any = None, terminated: bool = False,
                   signum: Any = None, expired: bool = False, **_: Any) -> None:
        if request is None or not self._ours(sender):
            return
        if request.id in self.failures.poisoned:
            from celery.worker import state as worker_state

            self.failures.poisoned.discard(request.id)
            worker_state.revoked.discard(request.id)
            self._finish_in_main(sender, request.id, "FAILURE",
                                 {"reason": "poison pill", "exc_type": "WorkerLostError",
                                  "exc_msg": "dead-lettered after repeated worker loss"}, request)
            return
        reason = "expired" if expired else ("terminated" if terminated else "revoked")
        self._finish_in_main(sender, request.id, "REVOKED", {"reason": reason}, request)

    def on_rejected(self, sender: Any = None, message: Any = None, exc: Any = None,
                    **_: Any) -> None:
        headers = getattr(message, "headers", None) or {}
        task_id = headers.get("id")
        self.recorder.stat("rejected")
        if message is not None:
            self.failures.from_message(message, "invalid_message", exc,
                                       None if exc else "not a task message")
        if task_id:
            self.recorder.task(
                str(task_id),
                static={"name": str(headers.get("task", "")), "worker": self.hostname},
                attempt={"state": "REJECTED", "finished": time.time(),
                         "reason": "invalid message", **self._exc_fields(exc)},
                retries=int(headers.get("retries") or 0), rank=RANK_FINAL,
            )

    def on_unknown(self, sender: Any = None, message: Any = None, exc: Any = None,
                   name: str | None = None, id: str | None = None, **_: Any) -> None:
        self.recorder.stat("unknown")
        now = time.time()
        if message is not None:
            self.failures.from_message(message, "unknown_task", exc,
                                       f"no task named {name!r} is registered on this worker")
        if id:
            self.recorder.task(
                id, static={"name": str(name or ""), "worker": self.hostname},
                attempt={"state": "REJECTED", "finished": now, "reason": "unknown task",
                         "exc_type": "NotRegistered", "exc_msg": f"unknown task {name!r}"},
                rank=RANK_FINAL,
            )
        if name:
            self.recorder.observe(str(name), now, "rejected")

    # -- pool child ------------------------------------------------------------------------
    def on_prerun(self, sender: Any = None, task_id: str | None = None, task: Any = None,
                  **_: Any) -> None:
        if task is None or task_id is None or not self._ours(task):
            return
        now = time.time()
        req = task.request
        sent = getattr(req, SENT_HEADER, None)
        wait = None
        if sent is not None:
            eta = req.eta
            ready = max(float(sent), _epoch(eta) or 0.0) if eta else float(sent)
            wait = max(0.0, now - ready)
        run = _Run(now, time.monotonic(), wait, req, task.name, req.hostname or self.hostname,
                   self._pid)
        self._runs[task_id] = run
        self.recorder.begin(task_id, run)

    def on_retry(self, sender: Any = None, request: Any = None, reason: Any = None,
                 **_: Any) -> None:
        run = self._runs.get(getattr(request, "id", None) or "")
        if run is not None and isinstance(reason, BaseException):
            run.exc = self._exc_fields(reason)

    def on_failure(self, sender: Any = None, task_id: str | None = None,
                   exception: BaseException | None = None, einfo: Any = None,
                   **_: Any) -> None:
        if task_id is None or not self._ours(sender):
            return
        run = self._runs.get(task_id)
        if run is not None:  # in the child: task_postrun finalizes
            run.exc = self._exc_fields(exception)
            self.failures.child_failure(sender, exception, einfo)
            return
        kind = type(exception).__name__
        reason = {"WorkerLostError": "worker_lost", "TimeLimitExceeded": "time_limit"}.get(
            kind, "exception")
        request = self._requests.get(task_id)
        if self._finish_in_main(sender, task_id, "FAILURE",
                                {"reason": reason.replace("_", " "), **self._exc_fields(exception)},
                                sender.request):
            self.failures.main_failure(sender, request, exception, reason, einfo)

    def on_postrun(self, sender: Any = None, task_id: str | None = None, task: Any = None,
                   state: str | None = None, **_: Any) -> None:
        if task_id is None or task is None:
            return
        run = self._runs.pop(task_id, None)
        if run is None or state is None:
            if run is not None:
                self.recorder.forget(task_id)
            # state=None: the body did not finish in this process (a BaseException escaped, e.g.
            # the SystemExit of a child ended for a hard time limit or revoke(terminate=True), or
            # an internal error). task_failure / task_revoked report that outcome; counting it
            # here as well would add a phantom SUCCESS that may even win the record.
            return
        now = time.time()
        runtime = time.monotonic() - run.mono
        final: dict[str, Any] = {"state": state, "finished": now, "runtime": runtime}
        deferred = getattr(task.request, DEFERRED_ATTR, None)
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

    # -- lifecycle -------------------------------------------------------------------------
    def on_worker_init(self, sender: Any = None, **_: Any) -> None:
        self.warden.worker_started = time.time()

    def on_worker_ready(self, sender: Any = None, **_: Any) -> None:
        if not self.settings.broker_is_redis:
            from celery_warden.broker_dlq import declare_dead_letter_queue

            declare_dead_letter_queue(self.app, self.settings)
        beat = self.warden.heartbeat
        if beat is not None:
            beat.beat("online")

    def on_worker_shutting_down(self, sender: Any = None, **_: Any) -> None:
        beat = self.warden.heartbeat
        if beat is not None:
            beat.beat("stopping")

    def on_process_init(self, sender: Any = None, **_: Any) -> None:
        self._pid = os.getpid()
        self.recorder.restart()

    def on_process_shutdown(self, sender: Any = None, **_: Any) -> None:
        self.recorder.stop(timeout=2.0)


__all__ = ["SignalHandlers"]
