"""Task types, chart series, the seven KPIs and performance summaries."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from celery_warden.read.series import SeriesReader
from celery_warden.read.task_types import TaskTypesReader
from celery_warden.serve.auth import Reader
from celery_warden.serve.context import Ctx, ServeContext
from celery_warden.serve.errors import ERROR_RESPONSES, ApiError, not_found
from celery_warden.serve.params import Cursor, Limit, TaskName, Window
from celery_warden.serve.schemas.metrics import Kpis, Series, TaskType, TaskTypes
from celery_warden.serve.schemas.monitoring import Performance

router = APIRouter(prefix="/api/v1", tags=["performance"], responses=ERROR_RESPONSES)
Name = Annotated[str, Path(min_length=1, max_length=300)]
Sort = Annotated[Literal["count", "name", "failed", "failure_rate", "retried", "rate", "avg"],
                 Query(description="Sort key (ties by name; rows without a value last).")]
Order = Annotated[Literal["desc", "asc"], Query(description="Sort order.")]


def _series(ctx: ServeContext) -> SeriesReader:
    return SeriesReader(ctx.monitor.metrics, ctx.redis, ctx.keys)


def _types(ctx: ServeContext) -> TaskTypesReader:
    return TaskTypesReader(ctx.monitor.metrics, ctx.redis, ctx.keys)


@router.get("/task-types", response_model=TaskTypes)
def task_types(who: Reader, ctx: Ctx, window: Window = "1h", sort: Sort = "count",
               order: Order = "desc", limit: Limit = 50, cursor: Cursor = None) -> Any:
    """One row per task name: count, failures, failure rate, retries, rate/min, and for the
    rows of the page p50/p95/p99 and a sparkline; sorted and paginated server-side."""
    if cursor is not None and not (cursor.isascii() and cursor.isdigit()):
        raise ApiError(422, "invalid_request", "cursor: not from a previous page")
    offset = int(cursor) if cursor else 0
    return ctx.masked(_types(ctx).page(window, sort, order == "desc", limit, offset))


@router.get("/task-types/{name}", response_model=TaskType)
def task_type(name: Name, who: Reader, ctx: Ctx, window: Window = "1h") -> Any:
    reader = _types(ctx)
    if not reader.known(name):
        raise not_found("task name", name)
    return ctx.masked(reader.row(name, window))


@router.get("/series", response_model=Series)
def series(who: Reader, ctx: Ctx, task_name: TaskName = None, window: Window = "1h") -> Any:
    """Chart points: per minute up to 6 h, per 10 minutes for 24 h, per hour for 7 d."""
    return ctx.masked(_series(ctx).series(task_name, window))


@router.get("/kpis", response_model=Kpis)
def kpis(who: Reader, ctx: Ctx, window: Window = "1h") -> Any:
    """The spec's seven KPIs, each with where its number comes from."""
    return ctx.masked(ctx.monitor.get_kpis(window))


@router.get("/performance", response_model=Performance)
def performance(who: Reader, ctx: Ctx, task_name: TaskName = None, window: Window = "1h"
                ) -> Any:
    """Counts, rates, durations (avg, p50/p95/p99) and throughput over a window."""
    return ctx.masked(ctx.monitor.get_performance_stats(task_name, window))


__all__ = ["router"]
