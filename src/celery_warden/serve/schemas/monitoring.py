"""Models of the spec's six ``/api/v1/monitoring/*`` endpoints (also used by the wider API)."""

from __future__ import annotations

from typing import Any

from celery_warden.serve.schemas.common import Open


class Health(Open):
    status: str  # "ok" | "unhealthy"
    store: bool
    broker: bool
    workers_online: int
    reasons: list[str]
    checked_at: str | None


class Worker(Open):
    hostname: str
    status: str
    state: str
    last_heartbeat: str | None
    heartbeat_age: float
    pid: int
    concurrency: int
    pool: str | None
    queues: list[Any]
    active: int
    reserved: int
    processed: int
    loadavg: list[Any]
    rss_bytes: int
    started_at: str | None


class Workers(Open):
    workers: list[Worker]
    online: int
    offline: int
    offline_after_seconds: float


class TaskError(Open):
    type: str
    message: str


class TaskStatus(Open):  # type: ignore[no-redef]  # a field named kwargs (pydantic plugin)
    task_id: str
    known: bool
    state: str
    name: str | None = None
    queue: str | None = None
    priority: int | None = None
    worker: str | None = None
    pid: int | None = None
    retries: int = 0
    sent_at: str | None = None
    eta: str | None = None
    received_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    runtime: float | None = None
    queue_wait: float | None = None
    elapsed: float | None = None
    error: TaskError | None = None
    reason: str | None = None
    parent_id: str | None = None
    root_id: str | None = None
    args: Any = None
    kwargs: Any = None
    history: list[Any] = []
    progress: Any = None
    deliveries: int = 1
    dlq_entry: str | None = None
    dlq_reason: str | None = None
    duplicate_of: str | None = None
    idempotency_key: str | None = None
    detail: str | None = None


class Performance(Open):
    task_name: str | None
    window: str
    window_seconds: int
    count: int
    success: int
    failure: int
    retry: int
    retried: int
    revoked: int
    rejected: int
    success_rate: float | None
    failure_rate: float | None
    retry_rate: float | None
    executions: int
    avg_duration: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    min_duration: float | None
    max_duration: float | None
    avg_queue_wait: float | None
    queue_wait_p50: float | None
    queue_wait_p95: float | None
    queue_wait_p99: float | None
    throughput_per_second: float
    throughput_per_minute: float
    histogram_relative_error: float


class RecentError(Open):
    fingerprint: str
    exc_type: str | None
    sample_message: str | None
    count: int
    last_seen: float | None
    task_names: dict[str, int]
    recent_task_ids: list[str]
    frame: str | None


class RecentErrors(Open):
    errors: list[RecentError]
    limit: int


class DlqProcessed(Open):
    requeued: int
    parked: int
    discarded: int
    failed: int
    claimed: int
    vanished: int
    malformed: int


__all__ = ["DlqProcessed", "Health", "Performance", "RecentError", "RecentErrors",
           "TaskError", "TaskStatus", "Worker", "Workers"]
