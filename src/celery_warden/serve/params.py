"""Query and path parameters shared by routes, with their bounds (hostile input stops here:
an over-long id or an unknown window is a 422, never a slow or failing read)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import Path, Query

from celery_warden.serve.errors import ApiError

Time = Annotated[str | None, Query(max_length=64,
                                    description="Epoch seconds or ISO 8601 (UTC if naive).")]
Cursor = Annotated[str | None, Query(max_length=200, description="From the previous page.")]
TaskId = Annotated[str, Path(min_length=1, max_length=200, description="A task id.")]
TaskName = Annotated[str | None, Query(max_length=300, description="A task name.")]
#: The windows the API offers (the store keeps per-minute buckets 7 days).
Window = Annotated[Literal["5m", "15m", "1h", "6h", "24h", "7d"],
                   Query(description="Time window.")]
Limit = Annotated[int, Query(ge=1, le=200, description="Items per page (at most 200).")]

__all__ = ["Cursor", "Limit", "TaskId", "TaskName", "Time", "Window"]


def parse_time(value: str | None, name: str) -> float | None:
    """Epoch seconds or ISO 8601 (``2026-11-28T07:00:00Z``; naive means UTC) → epoch seconds."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if number != number or number in (float("inf"), float("-inf")):
            raise ApiError(422, "invalid_request", f"{name}: not a time")
        return number
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ApiError(422, "invalid_request",
                       f"{name}: expected epoch seconds or ISO 8601") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


__all__ += ["parse_time"]
