"""Handlers that run in the worker's main process: receipt, outcomes the main process sees,
messages that never became a task, and the worker's lifecycle.

The main process performs **no store write per task** on the normal path: ``task_received``
stamps the received time into the request dict, which is the one passed to the pool child, and
the child writes the whole record. The main process writes only for outcomes it sees itself —
hard time limits and lost workers (``task_failure``), revokes, rejected and unknown messages,
poison pills — and for tasks held until their ETA (shown RECEIVED meanwhile).

A receipt is counted (the ``received`` total) with the delivery's outcome, where that outcome is
recorded: by the pool child with the task's end, or here with an outcome the main process sees
(:meth:`WorkerHandlers._finish`, and a lost child's success in :mod:`.lost`). Why not on
receipt: the consumer's event loop in this process is what limits a worker's throughput
(``bench/README.md``: ~1 ms of CPU per no-op task, at 80-85 % of a core), and counting there
took it a lock, a counter and a spool entry per task. What changes: a delivery that never
reaches an outcome — the whole worker killed with it prefetched — is counted when it is
delivered again and ends, once, instead of once per delivery.
"""

from __future__ import annotations

import logging
import socket
import time
import weakref
from typing import Any

from celery.worker import state as worker_state

from celery_warden import headers as h
from celery_warden.record import lost
from celery_warden.record.facts import Bounded, exc_fields
from celery_warden.record.order import RANK_FINAL, RANK_RECEIVED, delivery_seq
from celery_warden.record.ports import FailureSink, ReadyHook
from celery_warden.record.reaper import SpoolReaper
from celery_warden.record.recorder import Recorder
from celery_warden.record.totals import UNKNOWN
from celery_warden.services import Services

logger = logging.getLogger("celery_warden.recorder")

#: Outcomes remembered per process to count each (task id, attempt) once: ``task_failure``
#: fires twice for one hard time limit in Celery 5.7.0.
FINALIZED_MEMORY = 20_000
#: ``task_failure`` exception class → the reason a record and the DLQ show.
MAIN_REASONS = {"WorkerLostError": "worker_lost", "TimeLimitExceeded": "time_limit"}


class WorkerHandlers:
    """Signals of one Warden's app in the worker's main process (consumer and lifecycle)."""

    def __init__(self, services: Services, recorder: Recorder, failures: FailureSink,
                 on_ready: list[ReadyHook] | None = None) -> None:
        self.services = services
        self.app = services.app
        self.redactor = services.redactor
        self.recorder = recorder
        self.failures = failures
        self.on_ready_hooks = list(on_ready or [])
        self.hostname = socket.gethostname()
        self._finalized = Bounded(FINALIZED_MEMORY)
        # Requests this worker holds (for outcomes the main process reports itself); entries
        # vanish with the Request object, so no bound or clean-up is needed.
        self._requests: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
        self.reaper = SpoolReaper(recorder)

    def consumer_ours(self, sender: Any) -> bool:
        """Consumer signals (rejected, unknown) are global in Celery and their sender is the
        consumer: with two Wardens in one process, each counts only its own app's consumer."""
        return getattr(sender, "app", None) is self.app

    # -- receipt ---------------------------------------------------------------------------
    def on_received(self, sender: Any = None, request: Any = None, **_: Any) -> None:
        if request is None or getattr(request.task, "app", None) is not self.app:
            return
        now = time.time()
        rd = request.request_dict
        rd[h.RECEIVED] = now
        self._requests[request.id] = request
        info = request.delivery_info
        if info and info.get("redelivered") and self.failures.redelivered(request):
            # Poison pill: now in the DLQ; revoke locally so this delivery is acknowledged
            # without running (Request.execute_using_pool checks the revoked set): its
            # task_revoked records and counts it (on_revoked).
            worker_state.revoked.add(request.id)
            return
        if request.eta:  # held in the worker until its ETA: show it as RECEIVED meanwhile
            self.recorder.task(
                request.id,
                attempt={"state": "RECEIVED", "received": now,
                         "worker": request.hostname or self.hostname},
                retries=h.as_int(rd.get("retries")), rank=RANK_RECEIVED,
            )

    # -- outcomes the main process sees ----------------------------------------------------
    def _first_outcome(self, task_id: str, seq: int) -> bool:
        key = (task_id, seq)
        if key in self._finalized:
            return False
        self._finalized.put(key, True)
        return True

    def _finish(self, task: Any, task_id: str, state: str, fields: dict[str, str],
                context: Any = None) -> bool:
        """Record an outcome the main process saw; False if it was already counted."""
        request = self._requests.get(task_id)  # kept: a second signal for it must dedupe
        rd = request.request_dict if request is not None else {}
        retries = h.as_int(getattr(context, "retries", None) or rd.get("retries"))
        defers = h.defers(rd)
        if not self._first_outcome(task_id, delivery_seq(retries, defers)):
            return False
        now = time.time()
        attempt: dict[str, Any] = {"state": state, "finished": now, **fields}
        runtime = None
        start = getattr(request, "time_start", None)
        if start:
            runtime = max(0.0, now - start)
            attempt["runtime"] = runtime
        worker = getattr(context, "hostname", None) or self.hostname
        if request is not None and "worker" not in attempt:
            attempt["worker"] = worker
        queue = ((request.delivery_info if request is not None else None) or {}).get(
            "routing_key") or ""
        self.recorder.task(task_id, attempt=attempt, retries=retries, rank=RANK_FINAL,
                           defers=defers, static={"name": task.name})
        self.recorder.observe(task.name, now, state.lower(), runtime, retried=retries > 0)
        event = "failed" if state == "FAILURE" else "revoked"
        self.recorder.total((event, task.name, worker, queue,
                             fields.get("exc_type", "") if event == "failed" else ""), runtime)
        # Received here, and no pool child ended it: its receipt is counted with this outcome.
        self.recorder.total(("received", task.name, worker, queue, ""))
        return True

    def on_failure(self, sender: Any, task_id: str, exception: BaseException | None,
                   einfo: Any) -> None:
        """A hard time limit or a lost pool child (the task did not run in this process)."""
        reason = MAIN_REASONS.get(type(exception).__name__, "exception")
        request = self._requests.get(task_id)
        fields = {"reason": reason.replace("_", " "), **exc_fields(exception, self.redactor)}
        if self._finish(sender, task_id, "FAILURE", fields, sender.request):
            self.failures.main_failure(sender, request, exception, reason, einfo)

    def on_revoked(self, sender: Any = None, request: Any = None, terminated: bool = False,
                   signum: Any = None, expired: bool = False, **_: Any) -> None:
        if request is None or getattr(sender, "app", None) is not self.app:
            return
        if request.id in self.failures.poisoned:
            self.failures.poisoned.discard(request.id)
            worker_state.revoked.discard(request.id)
            self._finish(sender, request.id, "FAILURE",
                         {"reason": "poison pill", "exc_type": "WorkerLostError",
                          "exc_msg": "dead-lettered after repeated worker loss"}, request)
            return
        reason = "expired" if expired else ("terminated" if terminated else "revoked")
        self._finish(sender, request.id, "REVOKED", {"reason": reason}, request)

    # -- messages that never became a task -------------------------------------------------
    def on_rejected(self, sender: Any = None, message: Any = None, exc: Any = None,
                    **_: Any) -> None:
        if not self.consumer_ours(sender):
            return
        headers = getattr(message, "headers", None) or {}
        task_id = headers.get("id")
        self.recorder.stat("rejected")
        name = str(headers.get("task", ""))
        self.recorder.total(("rejected", name if name in self.app.tasks else UNKNOWN,
                             getattr(sender, "hostname", None) or self.hostname,
                             _queue_of(message), ""))
        if message is not None:
            self.failures.from_message(message, "invalid_message", exc,
                                       None if exc else "not a task message")
        if task_id:
            self.recorder.task(
                str(task_id),
                static={"name": str(headers.get("task", "")), "worker": self.hostname},
                attempt={"state": "REJECTED", "finished": time.time(),
                         "reason": "invalid message", **exc_fields(exc, self.redactor)},
                retries=h.as_int(headers.get("retries")), rank=RANK_FINAL,
            )

    def on_unknown(self, sender: Any = None, message: Any = None, exc: Any = None,
                   name: str | None = None, id: str | None = None, **_: Any) -> None:
        if not self.consumer_ours(sender):
            return
        self.recorder.stat("unknown")
        self.recorder.total(("rejected", UNKNOWN, getattr(sender, "hostname", None)
                             or self.hostname, _queue_of(message), ""))
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
        # No metric bucket under `name`: any producer can send any name, and per-name buckets
        # and index entries are for the tasks this fleet's code defines (counted in stats).

    # -- lifecycle -------------------------------------------------------------------------
    def on_worker_ready(self, sender: Any = None, **_: Any) -> None:
        # Spool this process's records from now on, and replay what processes that died on
        # this host left — now, and whenever a pool child dies while the worker runs (in a
        # thread: a store that does not answer never delays the start).
        self.recorder.enable_spool()
        lost.install(self.on_lost_success)
        self.reaper.start()
        for hook in self.on_ready_hooks:
            hook()
        beat = self.services.heartbeat
        if beat is not None:
            beat.beat("online")

    def on_lost_success(self, request: Any, meta: Any = None) -> None:
        """A pool child stored this task's SUCCESS and was lost before recording it, maybe
        (see :mod:`celery_warden.record.lost`): the reaper decides and records."""
        if getattr(request.task, "app", None) is self.app:
            self.reaper.lost_success(lost.LostSuccess.of(request, self.hostname, meta))

    def on_worker_shutting_down(self, sender: Any = None, **_: Any) -> None:
        self.reaper.stop()
        beat = self.services.heartbeat
        if beat is not None:
            beat.beat("stopping")


def _queue_of(message: Any) -> str:
    """The routing key a raw message arrived with ("" when unknown)."""
    info = getattr(message, "delivery_info", None) or {}
    return str(info.get("routing_key") or "")


__all__ = ["FINALIZED_MEMORY", "WorkerHandlers"]
