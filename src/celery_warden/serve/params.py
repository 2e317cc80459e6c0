"""Query and path parameters shared by routes, with their bounds (hostile input stops here:
an over-long id or an unknown window is a 422, never a slow or failing read)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path, Query

TaskId = Annotated[str, Path(min_length=1, max_length=200, description="A task id.")]
TaskName = Annotated[str | None, Query(max_length=300, description="A task name.")]
#: The windows the API offers (the store keeps per-minute buckets 7 days).
Window = Annotated[Literal["5m", "15m", "1h", "6h", "24h", "7d"],
                   Query(description="Time window.")]
Limit = Annotated[int, Query(ge=1, le=200, description="Items per page (at most 200).")]

__all__ = ["Limit", "TaskId", "TaskName", "Window"]
