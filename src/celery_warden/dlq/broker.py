"""RabbitMQ's own dead letters, drained into Warden's DLQ so users see one DLQ per fleet.

Warden's queues on RabbitMQ carry ``x-dead-letter-exchange``: a message the broker rejects
without requeue or expires by ``x-message-ttl`` is routed to ``warden.dlq`` instead of being
dropped. :func:`drain_broker_dead_letters` moves those messages into the DLQ store (reason
``broker_dead_letter``, the broker's ``x-death`` reason and original queue kept) and
acknowledges each one only after its entry was written, so a crash mid-drain loses nothing.
On Redis there is no broker-level dead-lettering; both functions are no-ops there.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Celery

from celery_warden import headers as h
from celery_warden.config import dead_letter_queue
from celery_warden.dlq.capture import entry_from_message
from celery_warden.dlq.entry import DLQEntry
from celery_warden.dlq.store import DeadLetterQueue
from celery_warden.record.order import RANK_FINAL
from celery_warden.services import services_for
from celery_warden.settings import WardenSettings


def declare_dead_letter_queue(app: Celery, settings: WardenSettings) -> bool:
    """Declare the dead-letter exchange and queue (idempotent); False on Redis."""
    if settings.broker_is_redis:
        return False
    with app.connection_for_write() as conn:
        dead_letter_queue(settings)(conn.default_channel).declare()
    return True


def _death(headers: dict[str, Any]) -> tuple[str, str | None]:
    deaths = headers.get("x-death") or []
    if deaths and isinstance(deaths, list | tuple):
        first = deaths[0]
        return str(first.get("reason", "dead-lettered")), first.get("queue")
    return "dead-lettered", None


def drain_broker_dead_letters(app: Celery, settings: WardenSettings, dlq: DeadLetterQueue,
                              max_items: int = 1000) -> int:
    """Move up to ``max_items`` broker dead letters into the DLQ; returns how many."""
    if settings.broker_is_redis:
        return 0
    moved = 0
    with app.connection_for_read() as conn:
        queue = dead_letter_queue(settings)(conn.default_channel)
        queue.declare()
        while moved < max_items:
            message = queue.get(no_ack=False, accept=["json"])
            if message is None:
                break
            reason, origin = _death(dict(message.headers or {}))
            entry = entry_from_message(
                message, "broker_dead_letter", broker_is_redis=False,
                extra=f"dead-lettered by RabbitMQ ({reason}) from queue {origin!r}",
            )
            entry.queue = origin or entry.queue
            entry.routing_key = origin or entry.routing_key
            entry.exc_type = f"BrokerDeadLetter[{reason}]"
            dlq.add(entry)
            _mark_task(app, entry, reason, dict(message.headers or {}))
            message.ack()
            moved += 1
    return moved


def _mark_task(app: Celery, entry: DLQEntry, reason: str, headers: dict[str, Any]) -> None:
    """Close the task's own record: a message the broker dead-lettered never reached a worker,
    so its record would otherwise stay at SENT and claim the task is still waiting. Written
    through the draining process's recorder (the maintenance task runs on a Warden-wired
    worker); without one the DLQ entry alone tells."""
    services = services_for(app)
    if services is None:
        return
    now = time.time()
    services.recorder.task(
        entry.task_id,
        static={"name": entry.name or "", "dlq_entry": entry.id, "dlq_reason": entry.reason},
        attempt={"state": "REJECTED", "finished": now,
                 "reason": f"dead-lettered by RabbitMQ ({reason})"},
        retries=h.as_int(headers.get("retries")), rank=RANK_FINAL,
    )
    if entry.name:
        services.recorder.observe(entry.name, now, "rejected")


__all__ = ["declare_dead_letter_queue", "drain_broker_dead_letters"]
