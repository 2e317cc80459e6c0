"""``/api/v1/queues``: depth, oldest message, consumers; depth history; purge (admin)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from celery_warden.read.depth_history import DepthHistory, HistoryWindow
from celery_warden.read.queue_view import queue_rows
from celery_warden.serve import control
from celery_warden.serve.audited import audited
from celery_warden.serve.auth import Admin, Reader
from celery_warden.serve.context import Ctx
from celery_warden.serve.errors import ERROR_RESPONSES, ApiError, not_found
from celery_warden.serve.schemas.fleet import Purged, Queues
from celery_warden.serve.schemas.history import QueueSeries

router = APIRouter(prefix="/api/v1/queues", tags=["queues"], responses=ERROR_RESPONSES)
QueueName = Annotated[str, Path(min_length=1, max_length=300)]


@router.get("", response_model=Queues)
def queues(who: Reader, ctx: Ctx) -> Any:
    """Every queue: depth (Redis priority lanes summed), oldest waiting message's age,
    consumers (online workers listening)."""
    return ctx.masked({"items": queue_rows(ctx.monitor)})


@router.get("/{name}/series", response_model=QueueSeries)
def queue_series(name: QueueName, who: Reader, ctx: Ctx,
                 window: Annotated[HistoryWindow, Query(description="Time window.")] = "1h",
                 ) -> Any:
    """Depth history as ``warden serve`` sampled it every ``WARDEN_QUEUE_SAMPLE_INTERVAL``:
    every sample for 15m and 1h, 5-minute roll-ups (average and maximum) for 24h and 7d."""
    if name not in ctx.monitor.queue_names():
        raise not_found("queue", name)
    found = DepthHistory(ctx.redis, ctx.keys, ctx.settings.queue_sample_interval).series(
        name, window, time.time())
    owner, last = ctx.redis.hmget(ctx.keys.sampler_state, ["owner", "last_sample"])
    detail = ("sampled by warden serve" if ctx.settings.serve_sampler else
              "not sampled by this server (WARDEN_SERVE_SAMPLER=false); another replica may")
    return {"name": name, "window": window, **found,
            "sample_interval_s": ctx.settings.queue_sample_interval,
            "last_sample": float(last) if last else None, "sampler": owner, "detail": detail}


@router.post("/{name}/purge", response_model=Purged)
def purge(name: QueueName, who: Admin, ctx: Ctx,
          confirm: Annotated[str, Query(max_length=300,
                                        description="The queue's name, again.")] = "") -> Any:
    """Delete every waiting message of a queue. ``confirm`` must repeat its name. Admin."""
    with audited(ctx, who, "queue.purge", name, {"confirm": confirm}) as outcome:
        if confirm != name:
            raise ApiError(422, "confirmation_required",
                           "confirm must repeat the queue name to purge it")
        count = control.purge(ctx.monitor, name)
        outcome.result = f"purged {count}"
    return {"queue": name, "purged": count}


__all__ = ["router"]
