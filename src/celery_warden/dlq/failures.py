"""What happens when a task fails for good: error groups and the dead letter queue.

Called from the signal handlers at each place a final failure becomes known (see
:mod:`celery_warden.record.signals` for which process that is). Error groups are buffered
through the recorder like every metric; DLQ entries are written synchronously, because they
must exist before the message is acknowledged — but with a hard deadline
(``WARDEN_STORE_DEADLINE``, no retries): a store that does not answer in time gets the entry
later, from the process's spool (:meth:`Recorder.spool_dlq`, a file that outlives the process),
and for ``SICK_FOR`` seconds after such a miss the spool is used at once, so a sick store costs
a failing task at most one deadline.

Which failures are dead-lettered: every worker-level failure (hard time limit, lost worker,
poison pill, unknown task, undecodable or invalid message), and task failures of tasks whose
``dead_letter`` option is on (Warden's base classes; every task with ``WARDEN_DLQ_ALL_TASKS``).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis
from celery.exceptions import SoftTimeLimitExceeded

from celery_warden import headers as h
from celery_warden.dlq.capture import entry_from_context, entry_from_message, entry_from_request
from celery_warden.dlq.entry import DLQEntry
from celery_warden.dlq.groups import describe
from celery_warden.dlq.store import DeadLetterQueue
from celery_warden.services import Services, redis_client, refusal

logger = logging.getLogger("celery_warden.failures")

#: Seconds the task path skips the store after it missed a deadline or refused.
SICK_FOR = 5.0


class FailureCapture:
    """Per-process failure handling for one Warden (a :class:`~celery_warden.record.ports.
    FailureSink` for the signal handlers)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings
        self.recorder = services.recorder
        self._dlq: DeadLetterQueue | None = None
        self._fast: DeadLetterQueue | None = None
        self._sick_until = 0.0
        self.redactor = services.redactor
        #: Task ids the main process dead-lettered as poison pills (revoked locally).
        self.poisoned: set[str] = set()

    @property
    def dlq(self) -> DeadLetterQueue:
        """The DLQ with Warden's usual timeouts (background delivery of spooled entries)."""
        if self._dlq is None:
            self._dlq = DeadLetterQueue(self.settings, app=self.services.app)
        return self._dlq

    @property
    def fast(self) -> DeadLetterQueue:
        """The DLQ on a task's path: hard deadline, no retries."""
        if self._fast is None:
            client = redis_client(self.settings.redis_url, timeout=self.settings.store_deadline,
                                  retries=0)
            self._fast = DeadLetterQueue(self.settings, app=self.services.app, client=client)
        return self._fast

    @property
    def sick(self) -> bool:
        return time.monotonic() < self._sick_until

    def _missed(self, exc: BaseException) -> None:
        if refusal(exc) is not None or isinstance(exc, redis.ConnectionError | OSError):
            self._sick_until = time.monotonic() + SICK_FOR

    # -- decisions --------------------------------------------------------------------------
    def dead_letter_enabled(self, task: Any, headers: dict[str, Any] | None = None) -> bool:
        opts = h.options(headers or {})
        if "dead_letter" in opts:
            return bool(opts["dead_letter"])
        flag = getattr(task, "dead_letter", None)
        return self.settings.dlq_all_tasks if flag is None else bool(flag)

    @staticmethod
    def child_reason(task: Any, exc: BaseException | None) -> str:
        if isinstance(exc, SoftTimeLimitExceeded):
            return "soft_time_limit"
        retries = int(task.request.retries or 0)
        max_retries = getattr(task, "max_retries", None)
        should_retry = getattr(task, "_should_retry", None)
        retryable = bool(should_retry(exc)) if callable(should_retry) and exc is not None else (
            retries > 0)
        if retryable and max_retries is not None and retries >= max_retries:
            return "max_retries"
        return "exception"

    # -- sources ----------------------------------------------------------------------------
    def child_failure(self, task: Any, exc: BaseException | None, einfo: Any) -> str | None:
        """Final failure seen in the pool child; returns the DLQ entry id, if any."""
        req = task.request
        tb_text = getattr(einfo, "traceback", None)
        if exc is not None:
            self.recorder.error(self._describe(exc, einfo, tb_text), task.name, req.id,
                                time.time())
        if not self.dead_letter_enabled(task, req.headers):
            return None
        history = task.history() if hasattr(task, "history") else []
        entry = entry_from_context(task, exc, tb_text, self.child_reason(task, exc),
                                   self.settings.broker_is_redis, history)
        return self._store(entry)

    def main_failure(self, task: Any, request: Any, exc: BaseException | None,
                     reason: str, einfo: Any = None) -> str | None:
        """Hard time limit or lost worker, seen in the main process."""
        tb_text = getattr(einfo, "traceback", None)
        if exc is not None:
            self.recorder.error(self._describe(exc, einfo, tb_text), task.name,
                                getattr(request, "id", "?"), time.time())
        if request is None:
            return None
        entry = entry_from_request(request, reason, self.settings.broker_is_redis, exc=exc,
                                   traceback=tb_text)
        return self._store(entry)

    def redelivered(self, request: Any) -> int | None:
        """Count a redelivery; at the limit, dead-letter the message and return the count.

        Only redelivered messages cost a Redis call (first deliveries are not counted), so the
        normal path stays without I/O. Returns None while the task may still run — also when
        the count cannot be written (store unreachable, ``READONLY``, ``OOM``): the delivery
        runs, as when its DLQ entry cannot be stored, rather than be lost or fail.
        """
        if self.sick:
            return None  # the store missed its deadline just now: run, without detection
        key = self.fast.keys.deliveries(request.id)
        try:
            pipe = self.fast.redis.pipeline(transaction=True)
            pipe.incr(key)
            pipe.expire(key, self.settings.task_ttl)
            redeliveries = int(pipe.execute()[0])
        except (redis.RedisError, OSError) as exc:
            self._missed(exc)
            code = refusal(exc)
            outage = code is not None or isinstance(exc, redis.ConnectionError | OSError)
            logger.log(logging.WARNING if outage else logging.ERROR,  # else: a bug, traceback
                       "warden: could not count the redelivery of %s (%s: %s); it runs without "
                       "poison-pill detection", request.id, code or type(exc).__name__, exc,
                       exc_info=None if outage else exc)
            return None
        deliveries = redeliveries + 1
        self.recorder.task(request.id, static={"deliveries": str(deliveries)})
        if deliveries <= self.settings.max_deliveries:
            return None
        entry = entry_from_request(
            request, "poison_pill", self.settings.broker_is_redis,
            message=f"delivered {deliveries} times (limit WARDEN_MAX_DELIVERIES="
                    f"{self.settings.max_deliveries}); the process running it died each time",
        )
        if self._store(entry) is None:
            return None  # could not store it: let it run rather than lose it
        self.poisoned.add(request.id)
        return deliveries

    def from_message(self, message: Any, reason: str, exc: BaseException | None = None,
                     extra: str | None = None) -> str | None:
        """Unknown task, undecodable body or invalid message: keep the raw message."""
        entry = entry_from_message(message, reason, self.settings.broker_is_redis, exc, extra)
        return self._store(entry)

    def _describe(self, exc: BaseException, einfo: Any, tb_text: str | None) -> dict[str, str]:
        """Error-group data with secrets masked in the messages and traceback (the
        fingerprint is computed before masking, from the normalised message)."""
        return describe(exc, getattr(einfo, "tb", None), tb_text, self.redactor)

    def _store(self, entry: DLQEntry) -> str | None:
        # The message fields (args, kwargs, headers) stay as they are: they are replayed.
        # The failure text is only read by people, so secrets in it are masked (here already,
        # so that the log line below, if Redis is down, does not carry them either).
        entry.mask_failure(self.redactor)
        if not self.sick:
            try:
                self.fast.add(entry)
            except (redis.RedisError, OSError) as exc:
                self._missed(exc)
                return self._spool(entry, exc)
        else:
            return self._spool(entry, None)
        self.recorder.task(entry.task_id, static={"dlq_entry": entry.id,
                                                  "dlq_reason": entry.reason})
        return entry.id

    def _spool(self, entry: DLQEntry, exc: BaseException | None) -> str | None:
        """The store missed its deadline: keep the entry in the spool (delivered later)."""
        why = "store missed its deadline just now" if exc is None else (
            f"{type(exc).__name__}: {exc}")
        try:
            spooled = self.recorder.spool_dlq(entry.to_hash())
        except OSError as spool_exc:
            spooled, why = False, f"{why}; spool: {spool_exc}"
        if spooled:
            logger.warning("warden: DLQ entry %s for task %s spooled (%s); it is written to "
                           "the DLQ when the store answers", entry.id, entry.task_id, why)
            self.recorder.task(entry.task_id, static={"dlq_entry": entry.id,
                                                      "dlq_reason": entry.reason})
            return entry.id
        logger.critical(
            "warden: could not write DLQ entry (%s); entry follows so it can be recovered: %s",
            why, json.dumps(entry.as_dict(), default=str),
        )
        return None

    def deliver_spooled(self, fields: dict[str, str]) -> None:
        """Write a spooled entry to the DLQ (flusher thread or replay; raises on failure)."""
        entry = DLQEntry.from_hash(fields)
        self.dlq.add(entry)


__all__ = ["FailureCapture"]
