"""Models of task types, series, KPIs."""

from __future__ import annotations

from typing import Any

from celery_warden.serve.schemas.common import Open


class TaskType(Open):
    name: str
    window: str
    count: int
    succeeded: int
    failed: int
    failure_rate_pct: float | None
    retried: int
    retries: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    avg_ms: float | None
    rate_per_min: float
    #: Finished per minute (per hour beyond 6 h) over the window; in list pages only.
    spark: list[int] | None = None


class TaskTypes(Open):
    window: str
    items: list[TaskType]
    sort: str
    order: str
    #: Task names in the whole list (every page).
    total: int
    next_cursor: str | None


class Point(Open):
    ts: int
    succeeded: int
    failed: int
    retried: int
    finished: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    wait_avg_ms: float | None
    wait_p50_ms: float | None
    wait_p95_ms: float | None
    wait_p99_ms: float | None


class Series(Open):
    task_name: str | None
    window: str
    step_seconds: int
    points: list[Point]


class Kpi(Open):
    value: Any
    unit: str
    source: str


class Kpis(Open):
    window: str
    task_success_rate: Kpi
    average_task_duration: Kpi
    queue_depth: Kpi
    worker_utilization: Kpi
    retry_rate: Kpi
    dlq_size: Kpi
    circuit_breaker_trips: Kpi


__all__ = ["Kpi", "Kpis", "Point", "Series", "TaskType", "TaskTypes"]
