"""``/api/v1/queues``: depth, oldest message, consumers; depth history; purge (admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from celery_warden.alerts.demand import Demand
from celery_warden.read.queue_view import queue_rows
from celery_warden.serve import control
from celery_warden.serve.audited import audited
from celery_warden.serve.auth import Admin, Reader
from celery_warden.serve.context import Ctx
from celery_warden.serve.errors import ERROR_RESPONSES, ApiError, not_found
from celery_warden.serve.schemas.fleet import Purged, Queues, QueueSeries

router = APIRouter(prefix="/api/v1/queues", tags=["queues"], responses=ERROR_RESPONSES)
QueueName = Annotated[str, Path(min_length=1, max_length=300)]


@router.get("", response_model=Queues)
def queues(who: Reader, ctx: Ctx) -> Any:
    """Every queue: depth (Redis priority lanes summed), oldest waiting message's age,
    consumers (online workers listening)."""
    return ctx.masked({"items": queue_rows(ctx.monitor)})


@router.get("/{name}/series", response_model=QueueSeries)
def queue_series(name: QueueName, who: Reader, ctx: Ctx) -> Any:
    """Backlog history as the autoscaler sampled it (each ``GET /api/v1/autoscale`` or
    ``warden autoscale`` adds a sample; kept over the stabilization window)."""
    if name not in ctx.monitor.queue_names():
        raise not_found("queue", name)
    points = [{"ts": ts, "desired": desired, "backlog": backlog}
              for ts, desired, backlog in Demand(ctx.settings, ctx.monitor).samples(name)]
    return {"name": name, "points": points,
            "detail": "sampled by the autoscaler (GET /api/v1/autoscale)"}


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
