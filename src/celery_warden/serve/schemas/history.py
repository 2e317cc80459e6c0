"""Models of the history the sampler keeps: queue depth series, worker transitions."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from celery_warden.serve.schemas.common import Open
from celery_warden.serve.schemas.fleet import WorkerDetail
from celery_warden.serve.schemas.monitoring import Worker, Workers


class DepthPoint(Open):
    ts: float
    depth: float
    depth_max: int
    oldest_age_s: float | None
    samples: int


class QueueSeries(Open):
    name: str
    window: str
    resolution: Literal["sample", "5m"]
    step_seconds: int | None
    sample_interval_s: float
    last_sample: float | None = Field(
        description="When the fleet's sampler last sampled (epoch s), whichever replica.")
    sampler: str | None = Field(description="host:pid:id of the replica that sampled last.")
    points: list[DepthPoint]
    detail: str


class WorkerTransition(Open):
    hostname: str
    status: Literal["online", "offline"]
    reason: Literal["started", "heartbeat", "shutdown", "lost", "expired"]
    ts: float
    at: str | None
    detected_at: float


class WorkerHistoryPage(Open):
    items: list[WorkerTransition]
    max_count: int
    max_age_s: int


class ListedWorker(Worker):
    offline_since: str | None = None


class WorkerList(Workers):
    workers: list[ListedWorker]  # type: ignore[assignment]


class WorkerWithHistory(WorkerDetail):
    offline_since: str | None = None
    history: list[WorkerTransition]


__all__ = ["DepthPoint", "ListedWorker", "QueueSeries", "WorkerHistoryPage", "WorkerList",
           "WorkerTransition", "WorkerWithHistory"]
