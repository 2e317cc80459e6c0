"""``CeleryMonitor``: the read side in one object, composed of one reader per resource.

The spec's usage (``monitor.get_task_status(id)``, ``monitor.get_performance_stats(name)``) and
everything the CLI shows go through here; the API's routes call the same readers. Every method
returns plain JSON-ready dicts and never raises for an unknown task or an empty window: it says
so in the answer.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from celery import Celery

from celery_warden.config import celery_config
from celery_warden.dlq.store import DeadLetterQueue
from celery_warden.keys import Keys
from celery_warden.read.breakers import BreakerReader
from celery_warden.read.errors import ErrorGroups
from celery_warden.read.fleet import FleetReader
from celery_warden.read.kpis import KpiReader
from celery_warden.read.metrics import MetricsReader
from celery_warden.read.queues import QueueReader
from celery_warden.read.tasks import TaskReader
from celery_warden.read.workers import WorkerReader
from celery_warden.record.windows import parse_window
from celery_warden.services import redis_client, services_for
from celery_warden.settings import WardenSettings

Window = str | int | timedelta


class CeleryMonitor:
    """Read-only view over Warden's Redis store (and the broker, for queue depths)."""

    def __init__(self, settings: WardenSettings, app: Celery | None = None) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.redis = redis_client(settings.redis_url)
        self._app = app
        self._dlq: DeadLetterQueue | None = None
        self.tasks = TaskReader(settings, self.redis)
        self.metrics = MetricsReader(settings, self.redis)
        self.workers = WorkerReader(settings, self.redis)
        self.errors = ErrorGroups(settings, client=self.redis)
        self.breakers = BreakerReader(settings, self.redis)
        self.fleet = FleetReader(self.metrics, self.breakers)
        self.kpi = KpiReader(self.metrics, self.workers, self.breakers,
                             lambda: self.get_queue_depths(), lambda: self.dlq.size())

    @property
    def app(self) -> Celery:
        """The Celery app for broker access (one configured from the settings if none given)."""
        if self._app is None:
            self._app = Celery("celery_warden.monitor", set_as_current=False)
            self._app.conf.update(celery_config(self.settings))
        return self._app

    @property
    def queues(self) -> QueueReader:
        return QueueReader(self.app, self.keys, self.redis)

    @property
    def dlq(self) -> DeadLetterQueue:
        """The dead letter queue (list, get, process, park, discard, requeue)."""
        if self._dlq is None:
            self._dlq = DeadLetterQueue(self.settings, app=self._app, client=self.redis)
        return self._dlq

    # -- tasks -----------------------------------------------------------------------------
    def get_task_status(self, task_id: str) -> dict[str, Any]:
        """State, timestamps, runtime, queue wait, worker, queue, retries and error of a task.

        Reads its own writes: when this process's recorder (the app's Warden) still buffers a
        change to the task — it was just published from here — that is flushed first, so the
        spec's ``add.delay(5, 3)`` then ``get_task_status(result.id)`` sees it at once.
        """
        services = services_for(self._app)
        if services is not None and services.recorder.holds(task_id):
            services.recorder.flush()
        return self.tasks.status(task_id)

    def buffers(self, task_id: str) -> bool:
        """Whether this process's recorder still holds an unwritten change to ``task_id`` (no
        I/O: an async caller reads the store itself unless this says to flush first)."""
        services = services_for(self._app)
        return services is not None and services.recorder.holds(task_id)

    def list_recent(self, limit: int = 20) -> list[dict[str, Any]]:
        """The most recently updated tasks, newest first."""
        return self.tasks.recent(limit)

    # -- performance -----------------------------------------------------------------------
    def task_names(self) -> list[str]:
        """Task names seen within the metric retention, most recent first."""
        return self.metrics.task_names()

    def get_performance_stats(self, task_name: str | None = None,
                              window: Window = "1h") -> dict[str, Any]:
        """Counts, rates, durations (avg, p50/p95/p99) and throughput over a window."""
        return self.metrics.performance(task_name, window)

    # -- workers and queues ----------------------------------------------------------------
    def get_worker_health(self) -> dict[str, Any]:
        """Every worker seen within the retention: online/offline, heartbeat age, load."""
        return self.workers.health()

    def queue_names(self) -> list[str]:
        return self.queues.names()

    def get_queue_depths(self, names: list[str] | None = None) -> dict[str, int | None]:
        """Messages waiting per queue (Redis priority sub-queues summed; RabbitMQ ready count)."""
        return self.queues.depths(names)

    def get_queue_latency(self, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """Per queue, seconds the oldest waiting message has waited (``age``; ``None`` with a
        ``reason`` where it cannot be known, e.g. on RabbitMQ)."""
        return self.queues.oldest(names)

    # -- errors and the DLQ -----------------------------------------------------------------
    def get_error_groups(self, limit: int = 20,
                         window: Window | None = None) -> list[dict[str, Any]]:
        """Failures grouped by fingerprint, most recent first (``window`` adds window counts)."""
        seconds = None if window is None else parse_window(
            window, self.settings.metrics_retention, "WARDEN_METRICS_RETENTION")
        return self.errors.list(limit, seconds)

    def get_recent_errors(self, limit: int = 10) -> list[dict[str, Any]]:
        """The most recent failure groups with a sample each (the spec's ``/errors?limit=``)."""
        return [
            {k: g[k] for k in ("fingerprint", "exc_type", "sample_message", "count", "last_seen",
                                "task_names", "recent_task_ids", "frame")}
            for g in self.errors.list(limit)
        ]

    def get_dlq_summary(self) -> dict[str, Any]:
        """DLQ size, counters per outcome and per reason."""
        return self.dlq.stats()

    # -- KPIs and fleet primitives -----------------------------------------------------------
    def get_recorder_stats(self) -> dict[str, int]:
        raw = cast(dict[str, str], self.redis.hgetall(self.keys.stats("recorder")))
        return {k: int(v) for k, v in raw.items()}

    def get_kpis(self, window: Window = "1h") -> dict[str, Any]:
        """The spec's seven KPIs over a window, each with where its number comes from."""
        return self.kpi.kpis(window)

    def get_circuit_breakers(self) -> list[dict[str, Any]]:
        """Every circuit breaker: state, window counts, trips, config, recent transitions."""
        return self.breakers.all()

    def get_fleet_primitives(self, window: Window = "1h") -> dict[str, Any]:
        """Circuit breakers, idempotency and fleet rate limits over a window."""
        return self.fleet.summary(window)


__all__ = ["CeleryMonitor"]
