"""``/api/v1/audit`` (admin): every mutating call, newest first."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from celery_warden.serve.auth import Admin
from celery_warden.serve.context import Ctx
from celery_warden.serve.errors import ERROR_RESPONSES
from celery_warden.serve.schemas.ops import AuditLog

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], responses=ERROR_RESPONSES)


@router.get("", response_model=AuditLog)
def audit(who: Admin, ctx: Ctx, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
          before: Annotated[float | None, Query(ge=0, le=1e11,
                                                description="Older than (epoch s).")] = None,
          who_: Annotated[str | None, Query(alias="who", max_length=64)] = None,
          action: Annotated[str | None, Query(max_length=64)] = None) -> Any:
    """Who did what, with which parameters (masked), the result and when."""
    items = ctx.audit.read(limit, before, who_, action)
    return {"items": items, "next_before": items[-1]["ts"] if len(items) == limit else None}


__all__ = ["router"]
