"""Models of queues and workers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator

from celery_warden.serve.schemas.common import Open
from celery_warden.serve.schemas.monitoring import Worker


class Queue(Open):
    name: str
    depth: int | None
    oldest_age_s: float | None
    oldest_reason: str | None
    consumers: int


class Queues(Open):
    items: list[Queue]


class DepthPoint(Open):
    ts: float
    backlog: int
    desired: int


class QueueSeries(Open):
    name: str
    points: list[DepthPoint]
    detail: str


class Purged(Open):
    queue: str
    purged: int


class ActiveTask(Open):
    task_id: str | None
    name: str | None
    started: float | None
    worker_pid: int | None
    queue: str | None


class WorkerDetail(Worker):
    active_tasks: list[ActiveTask] | None
    active_tasks_detail: str | None


class PoolChange(BaseModel):
    grow: int | None = Field(None, ge=1, le=64)
    shrink: int | None = Field(None, ge=1, le=64)

    @model_validator(mode="after")
    def one_of(self) -> PoolChange:
        if (self.grow is None) == (self.shrink is None):
            raise ValueError("give exactly one of grow or shrink")
        return self


class PoolChanged(Open):
    hostname: str
    reply: Any


class ShutdownSent(Open):
    hostname: str
    sent: bool


__all__ = ["ActiveTask", "DepthPoint", "PoolChange", "PoolChanged", "Purged", "Queue",
           "QueueSeries", "Queues", "ShutdownSent", "WorkerDetail"]
