"""Models of ``/api/v1/tasks``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from celery_warden.serve.schemas.common import Open
from celery_warden.serve.schemas.monitoring import TaskError, TaskStatus


class TaskSummary(Open):
    task_id: str
    name: str | None
    state: str
    queue: str | None
    worker: str | None
    retries: int
    sent_at: str | None
    received_at: str | None
    started_at: str | None
    finished_at: str | None
    runtime: float | None
    queue_wait: float | None
    error: TaskError | None
    dlq_entry: str | None
    parent_id: str | None
    root_id: str | None
    updated: float


class TaskPage(Open):
    items: list[TaskSummary]
    next_cursor: str | None
    complete: bool
    examined: int


class TimelineEvent(Open):
    event: str
    ts: float


class TaskBrief(Open):
    task_id: str
    name: str | None
    state: str | None


class Workflow(Open):
    parent: TaskBrief | None
    root: TaskBrief | None
    is_root: bool
    group: str | None
    children: list[TaskBrief]
    children_complete: bool


class TaskDetail(TaskStatus):  # type: ignore[no-redef]  # kwargs field (pydantic plugin)
    timeline: list[TimelineEvent]
    workflow: Workflow


class Submit(BaseModel):  # type: ignore[no-redef]  # a field named kwargs (pydantic plugin)
    name: str = Field(min_length=1, max_length=300, description="A registered task name.")
    args: list[Any] = Field(default_factory=list, max_length=1000)
    kwargs: dict[str, Any] = Field(default_factory=dict, max_length=1000)
    queue: str | None = Field(None, max_length=300)
    priority: int | None = Field(None, ge=0, le=255)
    countdown: float | None = Field(None, ge=0, le=7 * 24 * 3600)


class Submitted(Open):
    task_id: str


class Retried(Open):
    task_id: str
    via: str
    dlq_entry: str | None


class Revoked(Open):
    task_id: str
    state: str
    terminate: bool


__all__ = ["Retried", "Revoked", "Submit", "Submitted", "TaskBrief", "TaskDetail", "TaskPage",
           "TaskSummary", "TimelineEvent", "Workflow"]
