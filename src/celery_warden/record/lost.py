"""A task that succeeded in a pool child SIGKILLed before its ``task_postrun``.

Why: the tracer stores the result, then runs ``on_success`` and ``task_postrun`` — where a
pool child records (and spools) the outcome. A child killed in between leaves the result
stored and nothing in Warden: Celery 5.7's worker main process sees the lost job, finds the
stored SUCCESS (``Request._success_was_stored``), acknowledges the message and sends no
signal; the record stayed STARTED or SENT and the success was never counted (found by the
chaos suite: one child SIGKILL in sixteen landed there).

The main process learns of it by wrapping that one method (Celery versions without it requeue
such a task instead, and its next run records it). It must not count a success the dead child
did record — killed *after* its postrun, the outcome is in its spool — so the decision waits
for the reaper (:mod:`celery_warden.record.reaper`): after a look that began once the child was
dead, ran under the host-wide replay guard and left no dead spool unreplayed, the task's record
in the store says whether the child's outcome arrived; only if it did not does the main process
record the success (and the start, if that was not counted either).

A stored SUCCESS does not say which delivery stored it. At-least-once brokers deliver one task
id more than once — a retry re-published again after a redelivery, a message redelivered after
its first run finished — and when such a duplicate's pool child dies, Celery acknowledges it
because an *earlier* delivery succeeded. That success was counted where it ran; counting it
again overcounts (found chasing the chaos suite's surplus of a retrying task on RabbitMQ;
``tests/integration/test_killed_worker.py`` reproduces it). So a success
the backend stored (``date_done``) before this delivery started (``time_start``) only closes
this delivery's record. A duplicate that started before the other delivery stored its success
cannot be told apart without ``result_extended`` (the meta would name the worker and retries).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from celery.worker.request import Request

from celery_warden import headers as h
from celery_warden.keys import Keys
from celery_warden.record.order import RANK_FINAL, RANK_STARTED, delivery_seq
from celery_warden.record.recorder import Recorder

logger = logging.getLogger("celery_warden.recorder")

LostHook = Callable[[Any, Mapping[str, Any]], None]
_HOOKS: list[LostHook] = []


def install(hook: LostHook) -> bool:
    """Call ``hook(request, meta)`` (``meta``: the stored result) whenever the worker finds
    a lost job's SUCCESS stored (once per process however many Wardens); False if this Celery
    has no such path."""
    original = getattr(Request, "_success_was_stored", None)
    if original is None:
        return False
    if not getattr(original, "_warden", False):

        def wrapped(self: Any) -> Any:
            meta = original(self)
            if meta:
                for fn in list(_HOOKS):
                    try:
                        fn(self, meta)
                    except Exception:  # monitoring never breaks the worker's failure path
                        logger.exception("warden: recording a lost job's success failed")
            return meta

        wrapped._warden = True  # type: ignore[attr-defined]
        setattr(Request, "_success_was_stored", wrapped)  # noqa: B010 - Celery-version probe
    if hook not in _HOOKS:
        _HOOKS.append(hook)
    return True


@dataclass(frozen=True, slots=True)
class LostSuccess:
    """What the main process knew of the task when its pool process was lost."""

    task_id: str
    name: str
    worker: str
    queue: str
    retries: int
    defers: int
    started: float | None
    lost_at: float
    #: When the result backend stored the SUCCESS (its ``date_done``), if it says.
    stored_at: float | None = None

    @classmethod
    def of(cls, request: Any, hostname: str,
           meta: Mapping[str, Any] | None = None) -> LostSuccess:
        rd = request.request_dict
        return cls(str(request.id), str(request.name), request.hostname or hostname,
                   (request.delivery_info or {}).get("routing_key") or "",
                   h.as_int(rd.get("retries")), h.defers(rd),
                   getattr(request, "time_start", None), time.time(),
                   _epoch((meta or {}).get("date_done")))

    @property
    def stored_before_start(self) -> bool:
        """The SUCCESS was stored before this delivery started: another delivery of the same
        task id (a duplicate after a redelivery) stored it, not the process that was lost."""
        return (self.started is not None and self.stored_at is not None
                and self.stored_at < self.started)


def _epoch(value: Any) -> float | None:
    """A result's ``date_done`` (a datetime, or its ISO text; naive means UTC) in epoch s."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def settle(recorder: Recorder, client: redis.Redis, keys: Keys, lost: LostSuccess) -> bool:
    """Record the success unless the store already has this delivery's outcome (the dead
    child's flush or spool replay brought it). True when recorded."""
    seq = delivery_seq(lost.retries, lost.defers)
    cur_seq, cur_rank = client.hmget(keys.task(lost.task_id), "seq", "rank")
    cseq, crank = int(cur_seq or -1), int(cur_rank or -1)
    if (cseq, crank) >= (seq, RANK_FINAL):
        return False
    # This delivery ends here, its child never having reached its end: its receipt is counted
    # with it (record/worker.py), whichever way it is closed below.
    recorder.total(("received", lost.name, lost.worker, lost.queue, ""))
    if lost.stored_before_start:
        # Celery acknowledged this delivery as a success because the task id had succeeded
        # before; that success is counted where it ran. Close this delivery's record without
        # counting it again.
        recorder.task(lost.task_id, static={"name": lost.name}, rank=RANK_FINAL,
                      attempt={"state": "SUCCESS", "finished": lost.lost_at,
                               "worker": lost.worker,
                               "reason": "a duplicate delivery whose pool process was lost; "
                                         "the task had already succeeded"},
                      retries=lost.retries, defers=lost.defers)
        return False
    runtime = max(0.0, lost.lost_at - lost.started) if lost.started else None
    attempt: dict[str, Any] = {"state": "SUCCESS", "finished": lost.lost_at,
                               "worker": lost.worker,
                               "reason": "succeeded; its pool process was lost afterwards"}
    if runtime is not None:
        attempt["runtime"] = runtime
    recorder.task(lost.task_id, static={"name": lost.name}, attempt=attempt,
                  retries=lost.retries, rank=RANK_FINAL, defers=lost.defers)
    if (cseq, crank) < (seq, RANK_STARTED):  # the child's flusher never counted the start
        recorder.total(("started", lost.name, lost.worker, lost.queue, ""))
    recorder.observe(lost.name, lost.lost_at, "success", runtime, None, lost.queue or None,
                     retried=lost.retries > 0)
    recorder.total(("succeeded", lost.name, lost.worker, lost.queue, ""), runtime)
    return True


__all__ = ["LostHook", "LostSuccess", "install", "settle"]
