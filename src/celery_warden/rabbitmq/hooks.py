"""Where a refused queue declaration becomes one clear message instead of a traceback.

Celery declares a queue when a worker starts consuming it (``app.amqp.TaskConsumer``, during
the worker's start) and when a task is first published to it (``send_task_message``); that is
where RabbitMQ refuses a queue that exists with other arguments. ``Warden`` wraps both: on
``PRECONDITION_FAILED - inequivalent arg`` it probes every queue of the app on a fresh
connection (:func:`~celery_warden.rabbitmq.adoption.diagnose`) and

* a worker logs the one message at CRITICAL and exits with ``EX_CONFIG`` (78) before it
  consumes anything — a configuration error that restarting will not fix;
* a publisher gets :class:`~celery_warden.errors.QueueArgumentsMismatch` with that message.

Why on the refusal and not before every start: the happy path then costs no extra round trip
(a client publishing one task opens no second connection), Celery's own connection retries are
untouched, and every path that declares a queue is covered. Nothing is probed at configuration
time: building an app must not need a broker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from amqp.exceptions import PreconditionFailed
from celery import Celery

from celery_warden.errors import QueueArgumentsMismatch
from celery_warden.rabbitmq.adoption import SETTING, diagnose, mismatch_message
from celery_warden.rabbitmq.policy import policy_for
from celery_warden.settings import WardenSettings

#: sysexits.h: configuration error (a supervisor should not restart-loop on it).
EX_CONFIG = 78

logger = logging.getLogger("celery_warden.rabbitmq")


def refusal_error(app: Celery, settings: WardenSettings,
                  exc: BaseException) -> QueueArgumentsMismatch | None:
    """The clear error for a refused declaration (``None`` for any other failure)."""
    reply = str(getattr(exc, "reply_text", "") or "")
    if not isinstance(exc, PreconditionFailed) or "inequivalent arg" not in reply:
        return None
    try:
        message = mismatch_message(diagnose(app, settings), reply)
    except Exception as probe_exc:  # the broker went away meanwhile: still one message
        message = (f"RabbitMQ refused to declare a queue: {reply}\n"
                   f"(the queues could not be probed: {type(probe_exc).__name__}: {probe_exc})"
                   "\nRun `warden rabbitmq plan` for what exists and what to do.")
    return QueueArgumentsMismatch(message, reply)


def publish_guard(app: Celery, settings: WardenSettings, send: Callable[..., Any],
                  publishing: ContextVar[Any] | None = None,
                  slot: Callable[[], Any] | None = None,
                  published: Callable[[Any], None] | None = None) -> Callable[..., Any]:
    """``send_task_message`` that raises :class:`QueueArgumentsMismatch` on a refusal, and sets
    ``publishing`` to a fresh ``slot()`` while it runs — the publish signals' handlers find
    their app, and keep what to record, in it — then hands the slot to ``published`` once the
    publish returned (one wrapper: Celery passes ~20 keyword arguments, and each wrapper layer
    repacks them on every publish)."""

    def send_task_message(*args: Any, **kwargs: Any) -> Any:
        current = slot() if slot is not None else app
        token = publishing.set(current) if publishing is not None else None
        try:
            ret = send(*args, **kwargs)
        except PreconditionFailed as exc:
            error = refusal_error(app, settings, exc)
            if error is None:
                raise
            raise error from None
        finally:
            if token is not None:
                publishing.reset(token)  # type: ignore[union-attr]
        if published is not None:
            published(current)
        return ret

    return send_task_message


def consumer_guard(app: Celery, settings: WardenSettings,
                   make: Callable[..., Any]) -> Callable[..., Any]:
    """``TaskConsumer`` that stops the starting worker with the message on a refusal."""

    def task_consumer(*args: Any, **kwargs: Any) -> Any:
        try:
            return make(*args, **kwargs)
        except PreconditionFailed as exc:
            error = refusal_error(app, settings, exc)
            if error is None:
                raise
            logger.critical("Worker not started. %s", error)
            # WorkController.start turns SystemExit into a clean stop with this exit code.
            raise SystemExit(EX_CONFIG) from None

    return task_consumer


def policy_notice(settings: WardenSettings, vhost: str) -> str | None:
    """Said once when a worker is ready, when TTL and dead-lettering depend on a policy that
    Warden cannot see over AMQP (``None`` when queue arguments carry them)."""
    if settings.broker_is_redis or settings.rabbitmq_queue_arguments == "all":
        return None
    policy = policy_for(settings, vhost)
    return (f"RabbitMQ queues are declared without x-message-ttl / x-dead-letter-* "
            f"({SETTING}={settings.rabbitmq_queue_arguments}): message TTL and dead-lettering "
            f"come from the policy '{policy.name}' (`warden rabbitmq plan` prints it; "
            f"`{policy.verify_command()}` shows which queues follow it).")


__all__ = ["EX_CONFIG", "consumer_guard", "policy_notice", "publish_guard", "refusal_error"]
