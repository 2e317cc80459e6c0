"""The spec's six endpoints, exactly as it writes them (``/api/v1/monitoring/*``).

Thin: each is one call into a reader of the :class:`~celery_warden.read.monitor.CeleryMonitor`.
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from celery_warden.read.health import fleet_health
from celery_warden.serve.audited import audited
from celery_warden.serve.auth import Operator, Reader
from celery_warden.serve.context import Ctx
from celery_warden.serve.errors import ERROR_RESPONSES
from celery_warden.serve.fast_response import model_bytes, model_json
from celery_warden.serve.params import TaskId, TaskName, Window
from celery_warden.serve.schemas.monitoring import (
    DlqProcessed,
    Health,
    Performance,
    RecentErrors,
    TaskStatus,
    Workers,
)

router = APIRouter(prefix="/api/v1/monitoring", tags=["monitoring"], responses=ERROR_RESPONSES)


@router.get("/health", response_model=Health,
            responses={503: {"model": Health, "description": "Unhealthy, with the reasons."}})
def health(ctx: Ctx) -> Any:
    """200 only when the store and the broker answer and at least one worker is online;
    503 with the reasons otherwise. Needs no token: load balancers and probes rarely send one,
    and it tells nothing beyond ok or not, a worker count and why (no address, no name)."""
    m = ctx.monitor
    body = fleet_health(ctx.redis, ctx.celery, lambda: m.get_worker_health()["online"])
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)


@router.get("/workers", response_model=Workers)
def workers(who: Reader, ctx: Ctx) -> Any:
    """Every worker seen within the retention: online/offline, heartbeat age, load."""
    return ctx.masked(ctx.monitor.get_worker_health())


@router.get("/tasks/{task_id}", response_model=TaskStatus)
async def task(task_id: TaskId, who: Reader, ctx: Ctx) -> Any:
    """One task's state, timestamps, runtime, queue wait, worker, retries and error (an
    unknown id answers ``known: false``, state PENDING, as Celery does)."""
    # The API's hottest read: one HGETALL awaited on the loop, shaped by the reader, masked,
    # answered without a second pass through the model (serve/fast_response.py).
    if ctx.monitor.buffers(task_id):  # published from this very process: flush it first
        body = await run_in_threadpool(ctx.monitor.get_task_status, task_id)
    else:
        raw = await ctx.aredis.hgetall(ctx.keys.task(task_id))
        body = ctx.monitor.tasks.shape(task_id, cast(dict[str, str], raw))
    return model_json(TaskStatus, ctx.masked(body))


@router.get("/performance", response_model=Performance)
async def performance(who: Reader, ctx: Ctx, task_name: TaskName = None,
                      window: Window = "1h") -> Any:
    """Counts, rates, durations (avg, p50/p95/p99) and throughput over a window."""
    # Like the task lookup and the search page: awaited on the loop (no thread pool hop),
    # written once without a second pass through the model (serve/fast_response.py).
    stats = await ctx.monitor.metrics.aperformance(ctx.aredis, task_name, window)
    return model_bytes(Performance, ctx.masked(stats))


@router.get("/errors", response_model=RecentErrors)
def errors(who: Reader, ctx: Ctx,
           limit: Annotated[int, Query(ge=1, le=200)] = 10) -> Any:
    """The most recent failure groups, each with a masked sample."""
    return {"errors": ctx.masked(ctx.monitor.get_recent_errors(limit)), "limit": limit}


@router.post("/dlq/process", response_model=DlqProcessed)
def dlq_process(who: Operator, ctx: Ctx,
                max_items: Annotated[int, Query(ge=1, le=10_000)] = 100,
                requeue: bool = True) -> Any:
    """Claim up to ``max_items`` ready DLQ entries and requeue them with backoff
    (``requeue=true``) or park them for manual review (``false``). Scope ``operate``."""
    params = {"max_items": max_items, "requeue": requeue}
    with audited(ctx, who, "dlq.process", "", params) as outcome:
        counts = ctx.monitor.dlq.process(max_items, requeue)
        outcome.result = ", ".join(f"{k}={v}" for k, v in counts.items() if v) or "nothing"
    return counts


__all__ = ["router"]
