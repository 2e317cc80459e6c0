"""``/api/v1/alerts`` (firing, pending, history, silences) and ``/api/v1/autoscale``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from celery_warden.alerts.rulefile import parse_duration
from celery_warden.alerts.view import AlertsView
from celery_warden.autoscale import Autoscaler
from celery_warden.serve.audited import audited
from celery_warden.serve.auth import Operator, Reader
from celery_warden.serve.context import Ctx, ServeContext
from celery_warden.serve.errors import ERROR_RESPONSES, ApiError, not_found
from celery_warden.serve.schemas.ops import (
    AlertHistory,
    AlertsOverview,
    Autoscale,
    Silence,
    SilenceIn,
    Unsilenced,
)

router = APIRouter(prefix="/api/v1", tags=["alerts"], responses=ERROR_RESPONSES)


def _view(ctx: ServeContext) -> AlertsView:
    return AlertsView(ctx.settings, client=ctx.redis)


@router.get("/alerts", response_model=AlertsOverview)
def alerts(who: Reader, ctx: Ctx) -> Any:
    """Firing and pending alerts, silences, the evaluator holding the lease, notifications,
    the rules in force (or why the rules file is refused)."""
    return ctx.masked(_view(ctx).overview())


@router.get("/alerts/history", response_model=AlertHistory)
def history(who: Reader, ctx: Ctx, limit: Annotated[int, Query(ge=1, le=1000)] = 50,
            offset: Annotated[int, Query(ge=0, le=100_000)] = 0) -> Any:
    """Alert transitions (pending → firing → resolved), newest first."""
    return ctx.masked({"items": _view(ctx).history(limit, offset)})


@router.post("/alerts/silences", response_model=Silence, status_code=201)
def silence(body: SilenceIn, who: Operator, ctx: Ctx) -> Any:
    """Silence a rule (name or glob) for a duration: it keeps evaluating, notifications wait.
    Operate."""
    with audited(ctx, who, "alerts.silence", body.rule, body.model_dump()) as outcome:
        try:
            seconds = parse_duration(body.duration)
            entry = _view(ctx).silence(body.rule, seconds, body.scope, body.comment, who.name)
        except ValueError as exc:
            raise ApiError(422, "invalid_silence", str(exc)) from None
        outcome.result, outcome.status = f"silence {entry['id']}", 201
    return ctx.masked(entry)


@router.delete("/alerts/silences/{silence_id}", response_model=Unsilenced)
def unsilence(silence_id: Annotated[str, Path(min_length=1, max_length=100)], who: Operator,
              ctx: Ctx) -> Any:
    """End a silence now. Operate."""
    with audited(ctx, who, "alerts.unsilence", silence_id) as outcome:
        if not _view(ctx).unsilence(silence_id):
            raise not_found("silence", silence_id)
        outcome.result = "removed"
    return {"id": silence_id, "removed": True}


@router.get("/autoscale", response_model=Autoscale)
def autoscale(who: Reader, ctx: Ctx,
              queue: Annotated[str | None, Query(max_length=300)] = None) -> Any:
    """Desired worker processes per queue from backlog, arrival rate, run time and
    ``WARDEN_TARGET_LATENCY``, with the reasoning (KEDA metrics-api: ``valueLocation``
    ``queues.<queue>.desired_processes``, or ``desired_processes`` with ``?queue=``)."""
    if queue is not None:
        names = ctx.monitor.queue_names()
        if queue not in names and f"{ctx.settings.queue_prefix}{queue}" not in names:
            raise not_found("queue", queue)
    return ctx.masked(Autoscaler(ctx.settings, ctx.monitor).recommend(queue))


__all__ = ["router"]
