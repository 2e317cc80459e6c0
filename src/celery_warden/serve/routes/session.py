"""``/api/v1/session``: the dashboard's login, from a token to an HttpOnly session cookie.

``POST`` checks the token and sets ``warden_session`` (HttpOnly, SameSite=Strict, Path=/,
Secure over HTTPS); ``GET`` says who the caller is (``anonymous`` via ``open`` when reads are
open and there is no cookie); ``DELETE`` ends the session. A cross-site login attempt (a
``Sec-Fetch-Site`` other than same-origin or none) is refused, so no page can log a browser in.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from celery_warden.serve.auth import ANONYMOUS, COOKIE, identify, loopback_host, open_for
from celery_warden.serve.context import Ctx
from celery_warden.serve.errors import ERROR_RESPONSES, ApiError
from celery_warden.serve.tokens import Scope

router = APIRouter(prefix="/api/v1/session", tags=["session"], responses=ERROR_RESPONSES)


class Login(BaseModel):
    token: str = Field(min_length=1, max_length=512)


class SessionInfo(BaseModel):
    name: str
    scope: Literal["read", "metrics", "operate", "admin"]
    via: Literal["token", "cookie", "open"] | None = None


@router.post("", response_model=SessionInfo)
def login(body: Login, request: Request, response: Response, ctx: Ctx) -> SessionInfo:
    """Exchange a token for a session cookie (the token itself is never stored in it)."""
    if request.headers.get("sec-fetch-site") not in (None, "same-origin", "none"):
        raise ApiError(403, "cross_site", "log in from the dashboard's own origin")
    info = ctx.tokens.check(body.token)  # uncached: a login always reads the store
    if info is None:
        raise ApiError(401, "invalid_token", "unknown or revoked token")
    sid = ctx.tokens.open_session(info, ctx.settings.session_ttl)
    response.set_cookie(COOKIE, sid, max_age=ctx.settings.session_ttl, path="/",
                        httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    ctx.audit.write(info.name, "token", "session.create", "", None, "ok", 200)
    return SessionInfo(name=info.name, scope=info.scope.value, via="cookie")


@router.get("", response_model=SessionInfo)
async def whoami(request: Request, ctx: Ctx) -> SessionInfo:
    """Who this request is (token, cookie, or anonymous when reads are open)."""
    try:
        who = await identify(request, ctx)
    except ApiError as exc:
        if exc.code != "session_expired" or not open_for(ctx, Scope.READ):
            raise
        who = None
    if who is None:
        if not open_for(ctx, Scope.READ) or not loopback_host(request):
            raise ApiError(401, "unauthorized", "no session", {"WWW-Authenticate": "Bearer"})
        who = ANONYMOUS
    return SessionInfo(name=who.name, scope=who.scope.value, via=who.via)


@router.delete("", response_model=SessionInfo)
def logout(request: Request, response: Response, ctx: Ctx) -> SessionInfo:
    """End this browser's session (and forget its cookie)."""
    sid = request.cookies.get(COOKIE, "")
    who = ctx.tokens.session(sid) if sid else None
    if sid:
        ctx.tokens.close_session(sid)
        ctx.auth.forget_all()  # ended at once here; other processes within the cache's 2 s
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    if who is None:
        return SessionInfo(name="anonymous", scope="read", via=None)
    return SessionInfo(name=who.name, scope=who.scope.value, via="cookie")


__all__ = ["router"]
