"""Handlers that run in the publishing process: a web app, a task publishing another, beat.

``before_task_publish`` normalises the priority (one meaning on both brokers, see
:mod:`celery_warden.priority`) and stamps the send time into the ``warden_sent`` header, from
which the worker computes queue wait; once the publish returned, the task is recorded as SENT
(:meth:`PublishHandlers.published`).

Publish signals are global in Celery and carry only a task name, so the app publishing is known
from :data:`PUBLISHING`, which ``Warden`` sets to a fresh :class:`Publishing` around its app's
``send_task_message`` (the one path every Celery publish takes; ``rabbitmq.hooks.publish_guard``).
Unset means an app without Warden published: not ours. The same wrapper hands the slot back
when ``send_task_message`` returned, which is when ``after_task_publish`` would fire: Warden
connects no ``after_task_publish`` handler, so Celery's dispatch of it costs nothing (~2.5 µs
per ``delay()`` saved: the dispatch to a receiver and its guard).
"""

from __future__ import annotations

import socket
import time
from contextvars import ContextVar
from typing import Any

from celery_warden import headers as h
from celery_warden import priority
from celery_warden.record.facts import epoch
from celery_warden.services import Services


class Publishing:
    """One ``send_task_message`` call of a Warden's app: what ``before_task_publish`` kept of
    it to record once the publish returned."""

    __slots__ = ("app", "headers", "name", "queue")

    def __init__(self, app: Any) -> None:
        self.app = app
        self.headers: dict[str, Any] | None = None
        self.name: Any = None
        self.queue = ""


#: The publish of a Warden's app running in this context (set by ``publish_guard``).
PUBLISHING: ContextVar[Publishing | None] = ContextVar("warden_publishing", default=None)


class PublishHandlers:
    """``before_task_publish`` and the recording of a finished publish for one Warden's app."""

    def __init__(self, services: Services) -> None:
        self.app = services.app
        self.settings = services.settings
        self.recorder = services.recorder
        self.hostname = socket.gethostname()
        # Once, not per publish: the settings' property parses the broker URL (~1 µs).
        self.broker_is_redis = services.settings.broker_is_redis
        self.track_sent = services.settings.track_sent

    def slot(self) -> Publishing:
        """A fresh slot for one publish of this app (``publish_guard`` sets it)."""
        return Publishing(self.app)

    def on_before_publish(
        self, sender: Any = None, headers: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None, routing_key: str | None = None,
        exchange: str | None = None, **_: Any,
    ) -> None:
        slot = PUBLISHING.get()
        if headers is None or properties is None or slot is None or slot.app is not self.app:
            return
        priority.normalise(headers, properties, self.broker_is_redis)
        headers[h.SENT] = time.time()
        headers.pop(h.RECEIVED, None)
        headers.pop("redelivered", None)  # kombu's restore flag must not ride along on retry()
        if self.track_sent and "id" in headers:
            slot.headers, slot.name = headers, sender
            slot.queue = str(routing_key or exchange or "")

    def published(self, slot: Publishing) -> None:
        """The publish ``slot`` describes returned: record the task as SENT (one tuple, no
        lock: the flusher builds the record, see ``RecordBuffer.sent``)."""
        headers = slot.headers
        if headers is None:
            return
        sent = headers.get(h.SENT) or time.time()
        parent, root = headers.get("parent_id"), headers.get("root_id")
        group = headers.get("group")  # the API shows workflows
        self.recorder.sent((
            headers["id"], str(headers.get("task") or slot.name), slot.queue, float(sent),
            str(headers.get(h.PRIORITY, "")), str(parent) if parent else None,
            str(root) if root else None, epoch(headers.get("eta")),
            h.as_int(headers.get("retries")), self.hostname, str(group) if group else None,
        ))


__all__ = ["PUBLISHING", "PublishHandlers", "Publishing"]
