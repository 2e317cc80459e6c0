"""Base task classes: at-least-once delivery, retries with backoff, history, progress.

=================  ====================================================================
class              what it adds
=================  ====================================================================
``BaseTask``       acks late, reject on worker lost, default time limits, bounded retries
                   with exponential backoff + full jitter on *any* ``self.retry()``, a
                   retry history carried in the message, DLQ on final failure
``RetryableTask``  automatic retry on transient errors (connection errors, timeouts, plus
                   ``retry_for``), never on ``dont_retry_for``
``CriticalTask``   routed to ``high_priority``, priority 9, more retries
``LongRunningTask``  long soft/hard time limits and ``self.report_progress(done, total, msg)``
=================  ====================================================================

Options resolve per call, then per task, then the documented module default (Dramatiq's
``Retries`` is the model). Per call: ``task.apply_async(args, warden={"max_retries": 5,
"backoff_base": 0.5, "dead_letter": False})``; the options ride in the ``warden_options``
header, so they survive retries. Per task: class attributes or decorator options
(``@app.task(base=RetryableTask, max_retries=8, backoff_cap=60)``).
"""

from __future__ import annotations

import json
import socket
import time
from typing import TYPE_CHECKING, Any, ClassVar

from celery import Task
from celery.exceptions import Ignore, Retry

from celery_warden import headers as h
from celery_warden.fleet import guards
from celery_warden.redaction import Redactor
from celery_warden.services import services_for
from celery_warden.tasks.backoff import (
    DEFAULT_BASE,
    DEFAULT_CAP,
    DEFAULT_FACTOR,
    DEFAULT_JITTER,
    Backoff,
)

#: Defaults (documented; override per task or per call).
DEFAULT_MAX_RETRIES = 3
DEFAULT_SOFT_TIME_LIMIT = 300
DEFAULT_TIME_LIMIT = 360
CRITICAL_MAX_RETRIES = 10
CRITICAL_PRIORITY = 9
LONG_SOFT_TIME_LIMIT = 3600
LONG_TIME_LIMIT = 3900
#: Retry-history entries kept in the message (oldest dropped first).
MAX_HISTORY = 25
#: Longest exception message kept per retry-history entry.
MAX_HISTORY_MESSAGE = 500
#: Masks history text in processes where no Warden is installed (default secret keys only).
_DEFAULT_REDACTOR = Redactor()

OPTIONS_HEADER = h.OPTIONS
HISTORY_HEADER = h.HISTORY
#: Options a caller may set per call (JSON-serialisable ones only).
CALL_OPTIONS = frozenset({
    "max_retries", "backoff_base", "backoff_factor", "backoff_cap", "backoff_jitter",
    "dead_letter", "circuit_breaker", "idempotency_key", "idempotency_ttl",
})


def _transient_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError, socket.timeout]
    try:
        import redis

        errors += [redis.ConnectionError, redis.TimeoutError]
    except ImportError:  # pragma: no cover - redis is a dependency
        pass
    from kombu.exceptions import OperationalError

    errors.append(OperationalError)
    return tuple(dict.fromkeys(errors))


#: What ``RetryableTask`` retries by default.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = _transient_errors()


if TYPE_CHECKING:
    _Task = Task[Any, Any]
else:
    _Task = Task


class BaseTask(_Task):
    """Standard task: at-least-once, bounded retries with backoff, history, DLQ."""

    acks_late = True
    reject_on_worker_lost = True
    max_retries = DEFAULT_MAX_RETRIES
    soft_time_limit = DEFAULT_SOFT_TIME_LIMIT
    time_limit = DEFAULT_TIME_LIMIT
    backoff_base: float = DEFAULT_BASE
    backoff_factor: float = DEFAULT_FACTOR
    backoff_cap: float = DEFAULT_CAP
    backoff_jitter: str = DEFAULT_JITTER
    #: Exceptions retried automatically (none for BaseTask: call ``self.retry()`` yourself).
    retry_for: ClassVar[tuple[type[BaseException], ...]] = ()
    #: Exceptions never retried automatically, even if they match ``retry_for``.
    dont_retry_for: ClassVar[tuple[type[BaseException], ...]] = ()
    #: Send the task to the dead letter queue when it finally fails.
    dead_letter = True
    #: Logical queue (``default``/``high_priority``/``low_priority``) for WardenRouter.
    warden_queue: str | None = None
    #: Fleet primitives (see :mod:`celery_warden.fleet.guards`): a circuit breaker name, a
    #: fleet-wide rate limit ("100/m") for this task name, an idempotency key (callable over
    #: the task's arguments or ``str.format`` template) and its TTL in seconds.
    circuit_breaker: str | None = None
    fleet_rate_limit: str | None = None
    idempotency_key: Any = None
    idempotency_ttl: float | None = None

    # -- options ---------------------------------------------------------------------------
    def call_options(self) -> dict[str, Any]:
        """Per-call options of the current request (from the ``warden_options`` header)."""
        return h.options(self.request)

    def option(self, name: str) -> Any:
        """Resolve an option: per call, then per task (attribute), then module default."""
        opts = self.call_options()
        if name in opts:
            return opts[name]
        return getattr(self, name)

    def backoff_policy(self) -> Backoff:
        return Backoff(
            base=float(self.option("backoff_base")),
            factor=float(self.option("backoff_factor")),
            cap=float(self.option("backoff_cap")),
            jitter=self.option("backoff_jitter"),
        )

    def history(self) -> list[dict[str, Any]]:
        """Retry history of this task so far (one entry per retried attempt)."""
        return h.history(self.request)

    # -- publishing ------------------------------------------------------------------------
    def apply_async(self, args: Any = None, kwargs: Any = None, task_id: str | None = None,
                    producer: Any = None, link: Any = None, link_error: Any = None,
                    shadow: str | None = None, **options: Any) -> Any:
        """``apply_async`` that also accepts ``warden={...}`` per-call options."""
        warden_opts = options.pop("warden", None)
        if warden_opts:
            unknown = set(warden_opts) - CALL_OPTIONS
            if unknown:
                raise ValueError(
                    f"unknown warden option(s) {sorted(unknown)}; allowed: {sorted(CALL_OPTIONS)}"
                )
            headers = dict(options.get("headers") or {})
            headers[OPTIONS_HEADER] = dict(warden_opts)
            options["headers"] = headers
        return super().apply_async(args, kwargs, task_id, producer, link, link_error, shadow,
                                   **options)

    # -- retries ---------------------------------------------------------------------------
    def retry(self, args: Any = None, kwargs: Any = None, exc: Exception | None = None,
              throw: bool = True, eta: Any = None, countdown: float | None = None,
              max_retries: int | None = None, **options: Any) -> Any:
        """Celery's ``retry`` with Warden's backoff default and the retry history appended."""
        req = self.request
        retries = int(req.retries or 0)
        if max_retries is None:
            max_retries = self.option("max_retries")
        if countdown is None and eta is None:
            countdown = self.backoff_policy().delay(retries)
        history = self.history()
        if exc is not None or countdown is not None:
            history.append({
                "attempt": retries,
                "at": round(time.time(), 6),
                "exc_type": type(exc).__name__ if exc is not None else None,
                # Warden's own failure text, shown by the monitor, the DLQ and the CLI: masked
                # here, where it is made (the task's args/kwargs are not touched).
                "exc_msg": self._redactor().failure_text(str(exc), MAX_HISTORY_MESSAGE)
                if exc is not None else None,
                "delay": round(float(countdown), 6) if countdown is not None else None,
                "worker": req.hostname,
            })
            history = history[-MAX_HISTORY:]
        headers = dict(req.headers or {})
        headers.update(options.pop("headers", None) or {})
        headers[HISTORY_HEADER] = history
        self._note_history(history)
        return super().retry(args=args, kwargs=kwargs, exc=exc, throw=throw, eta=eta,
                             countdown=countdown, max_retries=max_retries, headers=headers,
                             **options)

    def _redactor(self) -> Redactor:
        """The Warden's redactor (with ``WARDEN_REDACT_KEYS``), or the default one."""
        services = services_for(self.app)
        return services.redactor if services is not None else _DEFAULT_REDACTOR

    def _note_history(self, history: list[dict[str, Any]]) -> None:
        services = services_for(self.app)
        if services is not None and self.request.id:
            services.recorder.task(self.request.id, static={"history": json.dumps(history)})

    def _should_retry(self, exc: BaseException) -> bool:
        retry_for = self.retry_for
        if not retry_for or not isinstance(exc, retry_for):
            return False
        return not (self.dont_retry_for and isinstance(exc, self.dont_retry_for))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return guards.call(self, super().__call__, args, kwargs)
        except (Retry, Ignore):
            raise
        except Exception as exc:
            req = self.request
            if req.called_directly or req.is_eager or not self._should_retry(exc):
                raise
            max_retries = self.option("max_retries")
            if max_retries is not None and int(req.retries or 0) >= max_retries:
                raise
            raise self.retry(exc=exc, max_retries=max_retries) from exc


class RetryableTask(BaseTask):
    """Retries transient errors (connection errors, timeouts, ``retry_for``) automatically."""

    retry_for = TRANSIENT_ERRORS


class CriticalTask(RetryableTask):
    """High-priority work: routed to ``high_priority``, priority 9, more retries."""

    warden_queue = "high_priority"
    priority = CRITICAL_PRIORITY
    max_retries = CRITICAL_MAX_RETRIES


class LongRunningTask(BaseTask):
    """Long jobs: extended time limits and progress reporting visible in the monitor."""

    soft_time_limit = LONG_SOFT_TIME_LIMIT
    time_limit = LONG_TIME_LIMIT

    def report_progress(self, done: float, total: float | None = None,
                        message: str | None = None) -> None:
        """Record progress (buffered like every record; visible within a flush interval)."""
        services = services_for(self.app)
        if services is None or not self.request.id:
            return
        progress: dict[str, Any] = {"done": done, "total": total, "message": message,
                                    "at": round(time.time(), 3)}
        if total:
            progress["percent"] = round(100.0 * float(done) / float(total), 2)
        services.recorder.task(self.request.id, static={"progress": json.dumps(progress)})


__all__ = [
    "CRITICAL_MAX_RETRIES", "CRITICAL_PRIORITY", "DEFAULT_MAX_RETRIES", "DEFAULT_SOFT_TIME_LIMIT",
    "DEFAULT_TIME_LIMIT", "LONG_SOFT_TIME_LIMIT", "LONG_TIME_LIMIT", "TRANSIENT_ERRORS",
    "BaseTask", "CriticalTask", "LongRunningTask", "RetryableTask",
]
