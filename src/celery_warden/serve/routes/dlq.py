"""``/api/v1/dlq``: list, stats, count, one entry; requeue / park (operate) and discard
(admin), one by id or in bulk by the list's filters."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query

from celery_warden.dlq.entry import REASONS, STATUSES
from celery_warden.read.dlq_view import DlqFilter, dlq_page, matching_ids
from celery_warden.serve.audited import audited
from celery_warden.serve.auth import Admin, Operator, Principal, Reader
from celery_warden.serve.context import Ctx, ServeContext
from celery_warden.serve.errors import ERROR_RESPONSES, ApiError, not_found
from celery_warden.serve.params import Cursor, Limit
from celery_warden.serve.schemas.dlq import DlqBulk, DlqCount, DlqDone, DlqEntry, DlqPage, DlqStats

router = APIRouter(prefix="/api/v1/dlq", tags=["dlq"], responses=ERROR_RESPONSES)
EntryId = Annotated[str, Path(min_length=1, max_length=200)]
Action = Literal["requeue", "park", "discard"]


def filters(reason: Annotated[Literal[REASONS] | None, Query()] = None,  # type: ignore[valid-type]
            task_name: Annotated[str | None, Query(max_length=300)] = None,
            status: Annotated[Literal[STATUSES] | None, Query()] = None,  # type: ignore[valid-type]
            older_than_s: Annotated[float | None, Query(ge=0, le=10 ** 9)] = None,
            ) -> DlqFilter:
    return DlqFilter(reason, task_name, status, older_than_s)


Filters = Annotated[DlqFilter, Depends(filters)]


@router.get("", response_model=DlqPage)
def entries(who: Reader, ctx: Ctx, f: Filters, cursor: Cursor = None,
            limit: Limit = 50) -> Any:
    """Entries newest first (by last failure), filtered; secrets masked."""
    try:
        page = dlq_page(ctx.monitor.dlq, f, cursor, limit)
    except ValueError:
        raise ApiError(422, "invalid_cursor", "cursor: not one this API handed out") from None
    return ctx.masked(page)


@router.get("/stats", response_model=DlqStats)
def stats(who: Reader, ctx: Ctx) -> Any:
    """Size, ready, claimed, and counters (added, requeued, parked, discarded, expired...)."""
    return ctx.monitor.dlq.stats()


@router.get("/count", response_model=DlqCount)
def count(who: Reader, ctx: Ctx, f: Filters) -> Any:
    """How many entries the filters match (what a bulk action would touch)."""
    ids, capped = matching_ids(ctx.monitor.dlq, f)
    return {"matched": len(ids), "capped": capped}


@router.get("/{entry_id}", response_model=DlqEntry)
def entry(entry_id: EntryId, who: Reader, ctx: Ctx) -> Any:
    found = ctx.monitor.dlq.get(entry_id)
    if found is None:
        raise not_found("DLQ entry", entry_id)
    return ctx.masked(ctx.monitor.dlq.view(found))


def _act(ctx: ServeContext, action: Action, entry_id: str) -> str | None:
    """Apply one action; ``None`` when there was nothing to act on, else the new task id or
    an empty string."""
    dlq = ctx.monitor.dlq
    if action == "requeue":
        return dlq.requeue(entry_id, force=True)
    done = dlq.park(entry_id, "parked through the API") if action == "park" \
        else dlq.discard(entry_id)
    return "" if done else None


def _one(ctx: ServeContext, who: Principal, action: Action, entry_id: str) -> dict[str, Any]:
    with audited(ctx, who, f"dlq.{action}", entry_id) as outcome:
        if ctx.monitor.dlq.get(entry_id) is None:
            raise not_found("DLQ entry", entry_id)
        result = _act(ctx, action, entry_id)
        if result is None:
            raise ApiError(409, "not_possible", f"cannot {action} entry {entry_id!r} now "
                           "(being processed, already gone, or not replayable)")
        outcome.result = f"task_id={result}" if result else "ok"
    return {"id": entry_id, "action": action, "task_id": result or None}


def _bulk(ctx: ServeContext, who: Principal, action: Action, f: DlqFilter) -> dict[str, Any]:
    params = {"reason": f.reason, "task_name": f.task_name, "status": f.status,
              "older_than_s": f.older_than_s}
    with audited(ctx, who, f"dlq.bulk_{action}", "", params) as outcome:
        ids, capped = matching_ids(ctx.monitor.dlq, f)
        done = sum(1 for i in ids if _act(ctx, action, i) is not None)
        outcome.result = f"matched={len(ids)} done={done} failed={len(ids) - done}"
    return {"matched": len(ids), "done": done, "failed": len(ids) - done, "capped": capped}


@router.post("/requeue", response_model=DlqBulk)
def bulk_requeue(who: Operator, ctx: Ctx, f: Filters) -> Any:
    """Requeue every entry the filters match (at most 10,000 per call). Operate."""
    return _bulk(ctx, who, "requeue", f)


@router.post("/park", response_model=DlqBulk)
def bulk_park(who: Operator, ctx: Ctx, f: Filters) -> Any:
    """Park every entry the filters match for manual review. Operate."""
    return _bulk(ctx, who, "park", f)


@router.post("/discard", response_model=DlqBulk)
def bulk_discard(who: Admin, ctx: Ctx, f: Filters) -> Any:
    """Discard every entry the filters match, for good. Admin."""
    return _bulk(ctx, who, "discard", f)


@router.post("/{entry_id}/requeue", response_model=DlqDone)
def requeue(entry_id: EntryId, who: Operator, ctx: Ctx) -> Any:
    """Re-publish one entry now (parked ones too); answers the new task id. Operate."""
    return _one(ctx, who, "requeue", entry_id)


@router.post("/{entry_id}/park", response_model=DlqDone)
def park(entry_id: EntryId, who: Operator, ctx: Ctx) -> Any:
    """Hold one entry for manual review (never requeued automatically). Operate."""
    return _one(ctx, who, "park", entry_id)


@router.post("/{entry_id}/discard", response_model=DlqDone)
def discard(entry_id: EntryId, who: Admin, ctx: Ctx) -> Any:
    """Remove one entry for good. Admin."""
    return _one(ctx, who, "discard", entry_id)


__all__ = ["router"]
