"""``/api/v1/tokens`` (admin): list, create (the secret is answered once), revoke — what
``warden token`` does, for an operator at the dashboard."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from celery_warden.serve.audited import audited
from celery_warden.serve.auth import Admin
from celery_warden.serve.context import Ctx
from celery_warden.serve.errors import ERROR_RESPONSES, ApiError, not_found
from celery_warden.serve.schemas.common import Open
from celery_warden.serve.tokens import NAME_RE

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"], responses=ERROR_RESPONSES)
TokenName = Annotated[str, Path(min_length=1, max_length=64)]


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=NAME_RE.pattern)
    scope: Literal["read", "metrics", "operate", "admin"]


class TokenOut(Open):
    name: str
    scope: str
    created: str | None
    id: str


class TokenCreated(TokenOut):
    token: str


class Tokens(Open):
    items: list[TokenOut]


@router.get("", response_model=Tokens)
def tokens(who: Admin, ctx: Ctx) -> Any:
    """Every token by name and scope (never the tokens themselves). Admin."""
    return {"items": [t.public() for t in ctx.tokens.list()]}


@router.post("", response_model=TokenCreated, status_code=201)
def create(body: TokenIn, who: Admin, ctx: Ctx) -> Any:
    """A new token, answered once (only its hash is kept). Admin."""
    with audited(ctx, who, "token.create", body.name, {"scope": body.scope}) as outcome:
        try:
            secret, info = ctx.tokens.create(body.name, body.scope)
        except ValueError as exc:
            raise ApiError(409, "conflict", str(exc)) from None
        outcome.status = 201
    return {**info.public(), "token": secret}


@router.delete("/{name}", response_model=TokenOut)
def revoke(name: TokenName, who: Admin, ctx: Ctx) -> Any:
    """Revoke a token (its sessions end with it): at once on the server that answers, within
    2 s on every other (each trusts a valid token that long without reading the store). Admin."""
    with audited(ctx, who, "token.revoke", name) as outcome:
        found = next((t for t in ctx.tokens.list() if t.name == name), None)
        if found is None or not ctx.tokens.revoke(name):
            raise not_found("token", name)
        ctx.auth.forget_all()  # refused at once here; other processes within the cache's 2 s
        outcome.result = "revoked"
    return found.public()


__all__ = ["router"]
