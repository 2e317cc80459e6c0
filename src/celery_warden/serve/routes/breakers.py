"""``/api/v1/breakers``: every circuit breaker's state, window and transitions; force open,
force closed, reset (operate)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path

from celery_warden.fleet.breaker import force
from celery_warden.serve.audited import audited
from celery_warden.serve.auth import Operator, Reader
from celery_warden.serve.context import Ctx
from celery_warden.serve.errors import ERROR_RESPONSES, not_found
from celery_warden.serve.schemas.ops import Breaker, BreakerForced, Breakers

router = APIRouter(prefix="/api/v1/breakers", tags=["breakers"], responses=ERROR_RESPONSES)
BreakerName = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[^\s]+$")]
_ACTIONS = {"open": "open", "close": "closed", "reset": "reset"}


@router.get("", response_model=Breakers)
def breakers(who: Reader, ctx: Ctx) -> Any:
    return ctx.masked({"items": ctx.monitor.get_circuit_breakers()})


@router.get("/{name}", response_model=Breaker)
def breaker(name: BreakerName, who: Reader, ctx: Ctx) -> Any:
    for b in ctx.monitor.get_circuit_breakers():
        if b["name"] == name:
            return ctx.masked(b)
    raise not_found("circuit breaker", name)


@router.post("/{name}/{action}", response_model=BreakerForced)
def force_breaker(name: BreakerName, action: Literal["open", "close", "reset"], who: Operator,
                  ctx: Ctx) -> Any:
    """Force a breaker open (its tasks are deferred), closed (calls go through), or reset to
    normal operation. A name no task has used yet is accepted (open it before planned
    maintenance of the dependency). Operate."""
    with audited(ctx, who, f"breaker.{action}", name) as outcome:
        state = force(ctx.settings, name, _ACTIONS[action])  # type: ignore[arg-type]
        outcome.result = state
    return {"name": name, "action": action, "state": state}


__all__ = ["router"]
