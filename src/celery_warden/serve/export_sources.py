"""Where each ``/metrics`` family is read from: the readers the exporter calls at scrape time.

Kept apart from the rendering (:mod:`celery_warden.serve.exporter`) so the collector is a pure
function of these answers, and so a test or the benchmark can build the sources from a Redis
client and a Celery app without the rest of the server.
"""

from __future__ import annotations

from typing import Any

import redis
from celery import Celery

from celery_warden.alerts.view import AlertsView
from celery_warden.keys import Keys
from celery_warden.read.deferral_totals import deferral_totals
from celery_warden.read.queues import QueueReader
from celery_warden.read.warden_metrics import (
    BreakerValue,
    breaker_values,
    dlq_by_reason,
    recorder_dropped,
)
from celery_warden.read.workers import WorkerReader
from celery_warden.serve.totals_text import task_parts
from celery_warden.services import redis_client
from celery_warden.settings import WardenSettings


class ExportSources:
    """The store, the broker and the alert states, as the exporter reads them."""

    def __init__(self, settings: WardenSettings, client: redis.Redis, app: Celery) -> None:
        self.keys = Keys(settings.key_prefix)
        self.client = client
        #: The task totals are read as bytes (:func:`celery_warden.serve.totals_text.task_parts`).
        self.raw_client = redis_client(settings.redis_url, decode=False)
        self.app = app
        self._workers = WorkerReader(settings, client)
        self._alerts = AlertsView(settings, client)

    def task_parts(self) -> list[bytes]:
        return task_parts(self.raw_client, self.keys)

    def workers(self) -> list[dict[str, Any]]:
        return list(self._workers.health()["workers"])

    def queues(self) -> tuple[dict[str, int | None], dict[str, dict[str, Any]]]:
        reader = QueueReader(self.app, self.keys, self.client)
        names = reader.names()
        return reader.depths(names), reader.oldest(names)

    def dlq_by_reason(self) -> dict[str, int]:
        return dlq_by_reason(self.client, self.keys)

    def breakers(self) -> list[BreakerValue]:
        return breaker_values(self.client, self.keys)

    def deferrals(self) -> dict[str, int]:
        return deferral_totals(self.client, self.keys)

    def recorder_dropped(self) -> int:
        return recorder_dropped(self.client, self.keys)

    def firing(self) -> list[dict[str, Any]]:
        return self._alerts.firing_counts()


__all__ = ["ExportSources"]
