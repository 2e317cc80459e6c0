"""``/api/v1/workers``: heartbeats, one worker with its running tasks, pool and shutdown
(admin, through Celery's remote control)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from celery_warden.read.worker_detail import active_tasks, find_worker
from celery_warden.serve import control
from celery_warden.serve.audited import audited
from celery_warden.serve.auth import Admin, Reader
from celery_warden.serve.context import Ctx
from celery_warden.serve.errors import ERROR_RESPONSES, not_found
from celery_warden.serve.schemas.fleet import PoolChange, PoolChanged, ShutdownSent, WorkerDetail
from celery_warden.serve.schemas.monitoring import Workers

router = APIRouter(prefix="/api/v1/workers", tags=["workers"], responses=ERROR_RESPONSES)
Hostname = Annotated[str, Path(min_length=1, max_length=300)]


@router.get("", response_model=Workers)
def workers(who: Reader, ctx: Ctx) -> Any:
    """Every worker seen within the retention: online/offline, heartbeat age, load."""
    return ctx.masked(ctx.monitor.get_worker_health())


@router.get("/{hostname}", response_model=WorkerDetail)
def worker(hostname: Hostname, who: Reader, ctx: Ctx) -> Any:
    """One worker's heartbeat and the tasks it runs now (asked live, 1 s at most)."""
    found = find_worker(ctx.monitor, hostname)
    if found is None:
        raise not_found("worker", hostname)
    tasks, why = (active_tasks(ctx.celery, hostname) if found["status"] == "online"
                  else (None, "worker offline"))
    return ctx.masked({**found, "active_tasks": tasks, "active_tasks_detail": why})


@router.post("/{hostname}/pool", response_model=PoolChanged)
def pool(hostname: Hostname, body: PoolChange, who: Admin, ctx: Ctx) -> Any:
    """Grow or shrink a worker's pool by n processes. Admin."""
    with audited(ctx, who, "worker.pool", hostname, body.model_dump()) as outcome:
        answer = control.pool(ctx.monitor, hostname, body.grow or 0, body.shrink or 0)
        outcome.result = str(answer["reply"])[:200]
    return ctx.masked(answer)


@router.post("/{hostname}/shutdown", response_model=ShutdownSent, status_code=202)
def shutdown(hostname: Hostname, who: Admin, ctx: Ctx) -> Any:
    """Ask a worker to shut down warmly (it finishes its running tasks). Admin."""
    with audited(ctx, who, "worker.shutdown", hostname) as outcome:
        control.shutdown(ctx.monitor, hostname)
        outcome.result, outcome.status = "shutdown sent", 202
    return {"hostname": hostname, "sent": True}


__all__ = ["router"]
