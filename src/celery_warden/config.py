"""Celery configuration for a Warden fleet: queues, priorities, acknowledgement, routing.

:func:`celery_config` returns a plain dict for ``app.conf.update``. Decisions:

* **At-least-once**: ``task_acks_late`` + ``task_reject_on_worker_lost``, so a message is only
  acknowledged after its task finished and comes back if the worker dies mid-task.
* **JSON only** (``accept_content=["json"]``): pickle from a broker is remote code execution.
* **Three queues**, ``default``, ``high_priority``, ``low_priority`` (optionally prefixed by
  ``WARDEN_QUEUE_PREFIX``), each accepting priorities 0..10 with 10 the most urgent on both
  brokers (see :mod:`celery_warden.priority`). On Redis each priority gets its own list
  (``priority_steps`` 0..9, ``queue_order_strategy="priority"``); kombu caps Redis priorities
  at 9, so user priorities 0 and 1 share the lowest lane there.
* **RabbitMQ queue arguments** (``WARDEN_RABBITMQ_QUEUE_ARGUMENTS``): a message TTL
  (``WARDEN_QUEUE_MESSAGE_TTL``) and a dead-letter exchange send expired or rejected messages to
  ``warden.dlq`` instead of letting them vanish (:mod:`celery_warden.dlq.broker` drains it into
  Warden's DLQ store). By default (``priority``) only ``x-max-priority=10`` is a queue argument
  and TTL and dead-lettering come from a RabbitMQ *policy*: a policy applies to queues that
  already exist and can be changed later, while a queue argument can never be changed on an
  existing queue (RabbitMQ refuses a declaration that differs: ``PRECONDITION_FAILED``).
  ``all`` declares the four arguments (no policy needed, but fixed for the queue's life);
  ``none`` declares none, to adopt queues that exist without arguments (priorities are then
  ignored by the broker). ``x-max-priority`` cannot come from a policy. The policy and the
  adoption check live in :mod:`celery_warden.rabbitmq`.
* **Routing**: a task class may name a logical queue in ``warden_queue`` (``CriticalTask`` uses
  ``high_priority``); :class:`WardenRouter` maps it to the real, possibly prefixed, queue name.
"""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue

from celery_warden.priority import DEFAULT_PRIORITY, MAX_PRIORITY
from celery_warden.settings import QueueArguments, WardenSettings

QUEUES = ("default", "high_priority", "low_priority")
DEFAULT_QUEUE = "default"
DLX_EXCHANGE = "warden.dlx"
DLQ_QUEUE = "warden.dlq"


def queue_name(settings: WardenSettings, logical: str) -> str:
    """The real queue name for a logical one (``default`` → ``<prefix>default``)."""
    return f"{settings.queue_prefix}{logical}"


def dead_letter_names(settings: WardenSettings) -> tuple[str, str]:
    """(exchange, queue) that RabbitMQ dead-letters into."""
    return (f"{settings.queue_prefix}{DLX_EXCHANGE}", f"{settings.queue_prefix}{DLQ_QUEUE}")


def dead_letter_arguments(settings: WardenSettings) -> dict[str, Any]:
    """Message TTL and dead-letter target as RabbitMQ queue arguments (a policy takes the same
    values under the names without ``x-``)."""
    dlx, dlq = dead_letter_names(settings)
    return {
        "x-message-ttl": settings.queue_message_ttl * 1000,
        "x-dead-letter-exchange": dlx,
        "x-dead-letter-routing-key": dlq,
    }


def rabbitmq_queue_arguments(settings: WardenSettings,
                             mode: QueueArguments | None = None) -> dict[str, Any]:
    """The arguments Warden declares on a RabbitMQ queue in ``mode``
    (default: ``WARDEN_RABBITMQ_QUEUE_ARGUMENTS``)."""
    mode = mode or settings.rabbitmq_queue_arguments
    if mode == "none":
        return {}
    arguments: dict[str, Any] = {"x-max-priority": MAX_PRIORITY}
    if mode == "all":
        arguments.update(dead_letter_arguments(settings))
    return arguments


def build_queues(settings: WardenSettings) -> list[Queue]:
    queues = []
    for logical in QUEUES:
        name = queue_name(settings, logical)
        arguments = {} if settings.broker_is_redis else rabbitmq_queue_arguments(settings)
        queues.append(
            Queue(name, Exchange(name, type="direct"), routing_key=name,
                  queue_arguments=arguments or None)
        )
    return queues


def dead_letter_queue(settings: WardenSettings) -> Queue:
    """The RabbitMQ queue that collects dead-lettered messages (not consumed by workers)."""
    dlx, dlq = dead_letter_names(settings)
    return Queue(dlq, Exchange(dlx, type="direct"), routing_key=dlq, durable=True)


class WardenRouter:
    """Routes tasks that declare ``warden_queue`` (a logical queue name) to the real queue."""

    def __init__(self, settings: WardenSettings) -> None:
        self.settings = settings

    def __call__(self, name: str, args: Any, kwargs: Any, options: dict[str, Any],
                 task: Any = None, **_: Any) -> dict[str, Any] | None:
        logical = getattr(task, "warden_queue", None)
        if logical and "queue" not in options:
            return {"queue": queue_name(self.settings, logical)}
        return None


#: Retries of a result-backend write on a connection error (Celery's backoff from 10 ms,
#: doubling, capped at 10 s per sleep: about 10 s in all, longer than a Redis restart).
RESULT_BACKEND_RETRIES = 10


def celery_config(settings: WardenSettings, **overrides: Any) -> dict[str, Any]:
    """Celery settings for a Warden-managed app; ``overrides`` win."""
    conf: dict[str, Any] = {
        "broker_url": settings.effective_broker_url,
        "result_backend": settings.effective_result_backend,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": settings.worker_prefetch,
        "worker_concurrency": settings.worker_concurrency,
        "result_expires": settings.result_expires,
        "task_queues": build_queues(settings),
        "task_default_queue": queue_name(settings, DEFAULT_QUEUE),
        "task_default_exchange": queue_name(settings, DEFAULT_QUEUE),
        "task_default_routing_key": queue_name(settings, DEFAULT_QUEUE),
        "task_default_priority": DEFAULT_PRIORITY,
        # Celery adds x-max-priority to every queue without one; not when adopting queues
        # that exist without arguments.
        "task_queue_max_priority": None if (
            not settings.broker_is_redis and settings.rabbitmq_queue_arguments == "none"
        ) else MAX_PRIORITY,
        "task_routes": [WardenRouter(settings)],
        "task_track_started": True,
        "task_send_sent_event": False,
        "worker_send_task_events": False,
        "broker_connection_retry_on_startup": True,
        # A result-backend write that meets a restarting Redis retries (~10 s of backoff)
        # instead of raising. Raised in the worker's failure path, it left the message neither
        # acknowledged nor rejected: stuck unacknowledged on RabbitMQ until the worker's
        # connection closed (the chaos suite stranded ~60 tasks at one Redis restart).
        "result_backend_always_retry": True,
        "result_backend_max_retries": RESULT_BACKEND_RETRIES,
        "timezone": "UTC",
        "enable_utc": True,
    }
    if settings.broker_is_redis:
        conf["broker_transport_options"] = {
            # kombu's virtual transports cap message priority at 9: ten lanes (see priority.py).
            "priority_steps": list(range(MAX_PRIORITY)),
            "queue_order_strategy": "priority",
            "visibility_timeout": settings.visibility_timeout,
            # Sweep for messages of dead workers often enough for the visibility timeout to
            # mean what it says (kombu's default sweeps only every ~100 s).
            "unacked_restore_interval": max(1, min(10, settings.visibility_timeout // 2)),
            "unacked_restore_throttle": 1,
        }
        if settings.broker_key_prefix:
            conf["broker_transport_options"]["global_keyprefix"] = settings.broker_key_prefix
    else:
        # AMQP publishes are fire-and-forget: without publisher confirms, a message written to
        # a connection that is dying (a network cut, a broker restart) is lost with no error,
        # so the task was "sent" and never exists — the chaos suite lost ~90 in a row at one
        # connection cut. With confirms, the publish waits for the broker's ack and raises
        # instead (Celery's retry policy, or the caller, publishes again).
        conf["broker_transport_options"] = {"confirm_publish": True}
    if settings.broker_key_prefix and settings.effective_result_backend.startswith(
        ("redis", "rediss", "valkey")
    ):
        conf["result_backend_transport_options"] = {
            "global_keyprefix": settings.broker_key_prefix
        }
    conf.update(overrides)
    return conf


__all__ = ["QUEUES", "WardenRouter", "build_queues", "celery_config", "dead_letter_arguments",
           "dead_letter_names", "dead_letter_queue", "queue_name", "rabbitmq_queue_arguments"]
