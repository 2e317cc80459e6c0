"""Celery signal handlers: which process runs which signal, and the wiring of all of them.

Under the prefork pool (checked against Celery 5.7 sources and pinned by
``tests/integration/test_signals.py``):

==========================================  ===========================  =====================
signal                                      process                      handled by
==========================================  ===========================  =====================
before_task_publish                         the publisher (client, a     :mod:`.publish`
                                            task in a pool child, beat)  (after_task_publish:
                                                                         not connected, see
                                                                         :mod:`.publish`)
task_received                               worker main (consumer)       :mod:`.worker`
task_prerun / task_postrun / task_retry     pool child                   :mod:`.child` (prerun and
                                                                         postrun: see below)
task_success                                pool child                   (not connected:
                                                                         postrun has the state)
task_failure                                pool child for exceptions;   :mod:`.child` when the
                                            **main** for hard time       task runs here, else
                                            limits and lost workers      :mod:`.worker`
task_revoked                                worker main                  :mod:`.worker`
task_rejected / task_unknown                worker main (consumer)       :mod:`.worker`
worker_ready / worker_shutting_down         worker main                  :mod:`.worker`
worker_process_init / _shutdown             pool child                   :mod:`.child`
==========================================  ===========================  =====================

Every handler is wrapped by :func:`~celery_warden.isolation.guarded` (a monitoring fault is
logged, throttled, and never reaches the task) and connected with ``weak=False`` so it lives as
long as the worker. ``task_success`` is deliberately not connected: Celery skips a signal's
dispatch only when it has no receivers, and a no-op receiver costs ~2 µs per task.

In a prefork pool child, ``worker_process_init`` replaces ``task_prerun`` / ``task_postrun``
with a hook on each task's tracer (:mod:`.tracer_hook`) and disconnects those two handlers in
that process only, so Celery skips both dispatches per task when nobody else listens
(``task_postrun`` stays for the performance line while it logs at INFO).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import signals
from celery.utils.dispatch import Signal

from celery_warden.isolation import guarded
from celery_warden.record.child import ChildHandlers
from celery_warden.record.ports import FailureSink, ReadyHook
from celery_warden.record.publish import PublishHandlers
from celery_warden.record.recorder import Recorder
from celery_warden.record.tracer_hook import TracerHook
from celery_warden.record.worker import WorkerHandlers
from celery_warden.services import Services


class SignalHandlers:
    """Connects one Warden's handlers for every process role to Celery's signals."""

    def __init__(self, services: Services, recorder: Recorder, failures: FailureSink,
                 on_ready: list[ReadyHook] | None = None) -> None:
        self.publish = PublishHandlers(services)
        self.child = ChildHandlers(services, recorder, failures)
        self.worker = WorkerHandlers(services, recorder, failures, on_ready)
        self.hook = TracerHook(services.app, self.child)
        self._connected: list[tuple[Signal, Callable[..., Any], str]] = []

    def on_failure(self, sender: Any = None, task_id: str | None = None,
                   exception: BaseException | None = None, einfo: Any = None,
                   **_: Any) -> None:
        """Routed by where the task ran: in this process (the child), else the main process
        reports a hard time limit or a lost worker."""
        if task_id is None or getattr(sender, "app", None) is not self.worker.app:
            return
        if self.child.running(task_id):
            self.child.on_failure(sender, task_id, exception, einfo)
        else:
            self.worker.on_failure(sender, task_id, exception, einfo)

    def on_process_init(self, sender: Any = None, **_: Any) -> None:
        """A prefork pool child starts: its recorder, then the tracer hook in place of this
        process's ``task_prerun`` / ``task_postrun`` handlers (kept when it cannot be used)."""
        self.child.on_process_init(sender)
        if self.hook.install():
            gone = (signals.task_prerun,) if self.hook.perf_line() else (
                signals.task_prerun, signals.task_postrun)
            for sig, handler, uid in self._connected:
                if sig in gone:
                    sig.disconnect(handler, dispatch_uid=uid)

    def table(self) -> list[tuple[Signal, Callable[..., Any]]]:
        p, c, w = self.publish, self.child, self.worker
        return [
            (signals.before_task_publish, p.on_before_publish),
            (signals.task_received, w.on_received),
            (signals.task_prerun, c.on_prerun),
            (signals.task_postrun, c.on_postrun),
            (signals.task_retry, c.on_retry),
            (signals.task_failure, self.on_failure),
            (signals.task_revoked, w.on_revoked),
            (signals.task_rejected, w.on_rejected),
            (signals.task_unknown, w.on_unknown),
            (signals.worker_ready, w.on_worker_ready),
            (signals.worker_shutting_down, w.on_worker_shutting_down),
            (signals.worker_process_init, self.on_process_init),
            (signals.worker_process_shutdown, c.on_process_shutdown),
        ]

    def connect(self) -> None:
        for sig, fn in self.table():
            uid = f"celery_warden:{id(self)}:{fn.__qualname__}"
            handler = guarded(fn)
            sig.connect(handler, weak=False, dispatch_uid=uid)
            self._connected.append((sig, handler, uid))

    def disconnect(self) -> None:
        self.hook.uninstall()
        for sig, handler, uid in self._connected:
            sig.disconnect(handler, dispatch_uid=uid)
        self._connected.clear()


__all__ = ["SignalHandlers"]
