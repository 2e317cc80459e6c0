"""``/api/v1/workers``: heartbeats (with ``offline_since``), online/offline history, one worker
with its running tasks and its history, pool and shutdown (admin, through Celery's remote
control)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from celery_warden.read.worker_detail import active_tasks, find_worker
from celery_warden.read.worker_history import WorkerHistory
from celery_warden.serve import control
from celery_warden.serve.audited import audited
from celery_warden.serve.auth import Admin, Reader
from celery_warden.serve.context import Ctx, ServeContext
from celery_warden.serve.errors import ERROR_RESPONSES, not_found
from celery_warden.serve.schemas.fleet import PoolChange, PoolChanged, ShutdownSent
from celery_warden.serve.schemas.history import (
    WorkerHistoryPage,
    WorkerList,
    WorkerWithHistory,
)

router = APIRouter(prefix="/api/v1/workers", tags=["workers"], responses=ERROR_RESPONSES)
Hostname = Annotated[str, Path(min_length=1, max_length=300)]


def _history(ctx: ServeContext) -> WorkerHistory:
    return WorkerHistory(ctx.redis, ctx.keys, ctx.settings.worker_history_max,
                         ctx.settings.worker_history_max_age)


@router.get("", response_model=WorkerList)
def workers(who: Reader, ctx: Ctx) -> Any:
    """Every worker seen within the retention: online/offline (``offline_since`` for an
    offline one), heartbeat age, load."""
    health = ctx.monitor.get_worker_health()
    since = _history(ctx).offline_since(health["workers"], ctx.settings.offline_after,
                                        time.time())
    rows = [{**w, "offline_since": since.get(w["hostname"])} for w in health["workers"]]
    return ctx.masked({**health, "workers": rows})


@router.get("/history", response_model=WorkerHistoryPage)
def history(who: Reader, ctx: Ctx,
            limit: Annotated[int, Query(ge=1, le=1000,
                                        description="Transitions (at most 1000).")] = 100,
            ) -> Any:
    """Recent online/offline transitions of every worker, newest first (recorded by the
    history sampler of ``warden serve``)."""
    found = _history(ctx)
    return ctx.masked({"items": found.recent(limit), "max_count": found.max_count,
                       "max_age_s": found.max_age})


@router.get("/{hostname}", response_model=WorkerWithHistory)
def worker(hostname: Hostname, who: Reader, ctx: Ctx) -> Any:
    """One worker's heartbeat, the tasks it runs now (asked live, 1 s at most) and its
    online/offline history (newest first, at most 100)."""
    found = find_worker(ctx.monitor, hostname)
    if found is None:
        raise not_found("worker", hostname)
    tasks, why = (active_tasks(ctx.celery, hostname) if found["status"] == "online"
                  else (None, "worker offline"))
    hist = _history(ctx)
    since = hist.offline_since([found], ctx.settings.offline_after, time.time())
    return ctx.masked({**found, "active_tasks": tasks, "active_tasks_detail": why,
                       "offline_since": since.get(hostname),
                       "history": hist.recent(100, hostname)})


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
