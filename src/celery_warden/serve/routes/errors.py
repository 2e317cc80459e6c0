"""``/api/v1/errors``: failures grouped by fingerprint; one group with its per-minute series."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from celery_warden.serve.auth import Reader
from celery_warden.serve.context import Ctx
from celery_warden.serve.errors import ERROR_RESPONSES, not_found
from celery_warden.serve.schemas.dlq import ErrorGroupDetail, ErrorGroups

router = APIRouter(prefix="/api/v1/errors", tags=["errors"], responses=ERROR_RESPONSES)
Fingerprint = Annotated[str, Path(min_length=1, max_length=128)]


@router.get("", response_model=ErrorGroups)
def groups(who: Reader, ctx: Ctx, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> Any:
    """Error groups, most recently seen first: counts, first/last seen, task names."""
    return ctx.masked({"items": ctx.monitor.errors.list(limit)})


@router.get("/{fingerprint}", response_model=ErrorGroupDetail)
def group(fingerprint: Fingerprint, who: Reader, ctx: Ctx,
          minutes: Annotated[int, Query(ge=1, le=1440)] = 60) -> Any:
    """One group with its masked sample traceback and failures per minute."""
    found = ctx.monitor.errors.get(fingerprint)
    if found is None:
        raise not_found("error group", fingerprint)
    found["series"] = ctx.monitor.errors.series(fingerprint, minutes)
    return ctx.masked(found)


__all__ = ["router"]
