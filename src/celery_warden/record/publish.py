"""Handlers that run in the publishing process: a web app, a task publishing another, beat.

``before_task_publish`` normalises the priority (one meaning on both brokers, see
:mod:`celery_warden.priority`) and stamps the send time into the ``warden_sent`` header, from
which the worker computes queue wait; ``after_task_publish`` records the task as SENT.

Publish signals are global in Celery and carry only a task name, so the app publishing is known
from :data:`PUBLISHING_APP`, which ``Warden`` sets around its app's ``send_task_message`` (the
one path every Celery publish takes). Unset means an app without Warden published: not ours.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any

from celery_warden import headers as h
from celery_warden import priority
from celery_warden.record.facts import epoch
from celery_warden.record.order import RANK_SENT
from celery_warden.services import Services

#: The app whose ``send_task_message`` is running in this context (set by Warden).
PUBLISHING_APP: ContextVar[Any] = ContextVar("warden_publishing_app", default=None)


class PublishHandlers:
    """``before_task_publish`` / ``after_task_publish`` for one Warden's app."""

    def __init__(self, services: Services) -> None:
        self.app = services.app
        self.settings = services.settings
        self.recorder = services.recorder

    def ours(self) -> bool:
        return PUBLISHING_APP.get() is self.app

    def on_before_publish(
        self, sender: Any = None, headers: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None, **_: Any,
    ) -> None:
        if headers is None or properties is None or not self.ours():
            return
        priority.normalise(headers, properties, self.settings.broker_is_redis)
        headers[h.SENT] = time.time()
        headers.pop(h.RECEIVED, None)
        headers.pop("redelivered", None)  # kombu's restore flag must not ride along on retry()

    def on_after_publish(
        self, sender: Any = None, headers: dict[str, Any] | None = None,
        routing_key: str | None = None, exchange: str | None = None, **_: Any,
    ) -> None:
        if not self.settings.track_sent or not headers or "id" not in headers:
            return
        if not self.ours():
            return
        sent = headers.get(h.SENT) or time.time()
        static = {
            "name": str(headers.get("task") or sender),
            "queue": str(routing_key or exchange or ""),
            "sent": float(sent),
            "priority": str(headers.get(h.PRIORITY, "")),
        }
        for field in ("parent_id", "root_id", "group"):  # group: the API shows workflows
            if headers.get(field):
                static[field] = str(headers[field])
        eta = epoch(headers.get("eta"))
        if eta is not None:
            static["eta"] = eta
        retries = h.as_int(headers.get("retries"))
        if retries == 0:
            self.recorder.task(headers["id"], static=static, attempt={"state": "SENT"},
                               rank=RANK_SENT)
        else:  # a retry's re-publish: the finishing attempt owns the state (RETRY)
            self.recorder.task(headers["id"], static=static)


__all__ = ["PUBLISHING_APP", "PublishHandlers"]
