"""Models of the dead letter queue and error groups."""

from __future__ import annotations

from typing import Any

from celery_warden.serve.schemas.common import Open


class DlqEntry(Open):  # type: ignore[no-redef]  # a field named kwargs (pydantic plugin)
    id: str
    task_id: str
    reason: str
    name: str | None
    args: Any
    kwargs: Any
    queue: str | None
    priority: int | None
    exc_type: str | None
    exc_message: str | None
    traceback: str | None
    history: list[Any]
    worker: str | None
    first_failed: float
    last_failed: float
    failures: int
    requeues: int
    status: str
    requeued_task_ids: list[str]
    note: str | None


class DlqPage(Open):
    items: list[DlqEntry]
    next_cursor: str | None
    skipped: int


class DlqCount(Open):
    matched: int
    capped: bool


class DlqStats(Open):
    size: int
    ready: int
    claimed: int


class DlqDone(Open):
    id: str
    action: str
    task_id: str | None = None


class DlqBulk(Open):
    matched: int
    done: int
    failed: int
    capped: bool


class ErrorGroup(Open):
    fingerprint: str
    count: int
    exc_type: str | None
    message: str | None
    sample_message: str | None
    frame: str | None
    first_seen: float | None
    last_seen: float | None
    task_names: dict[str, int]
    recent_task_ids: list[str]
    sample_traceback: str | None


class ErrorGroups(Open):
    items: list[ErrorGroup]


class MinuteCount(Open):
    ts: int
    count: int


class ErrorGroupDetail(ErrorGroup):
    series: list[MinuteCount]


__all__ = ["DlqBulk", "DlqCount", "DlqDone", "DlqEntry", "DlqPage", "DlqStats", "ErrorGroup",
           "ErrorGroupDetail", "ErrorGroups", "MinuteCount"]
