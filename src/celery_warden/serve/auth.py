"""Who is calling, and may they: tokens, the session cookie, open reads, same-origin checks.

``require(scope)`` is a FastAPI dependency that answers a :class:`Principal` or refuses:

* ``Authorization: Bearer <token>`` → the token's name and scope (``via="token"``); a token
  that does not exist is 401 even where reads are open (a wrong token is a mistake to report);
* else the ``warden_session`` cookie (HttpOnly, SameSite=Strict, Path=/) → ``via="cookie"``;
  a non-GET request with a cookie must also be same-origin (``Sec-Fetch-Site: same-origin``,
  or an ``Origin`` equal to the request's own), else 403 ``cross_site`` — no CSRF;
* else, for ``read`` with ``WARDEN_API_OPEN_READS`` (``metrics`` with ``WARDEN_METRICS_OPEN``):
  ``anonymous`` (``via="open"``) — on a loopback-bound server only for a loopback ``Host``
  (no DNS rebinding: a web page cannot read an open server through a name it controls);
* else 401. A principal whose scope does not cover the endpoint's is 403, unless the endpoint
  is open anyway.

The check is ``async`` and resolves credentials through :class:`~.auth_cache.AuthCache` (the
asyncio client, valid credentials trusted for 2 s): once per request, on the event loop, with
no thread-pool hop — a revocation elsewhere takes effect within those 2 s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from celery_warden.serve.binding import is_loopback
from celery_warden.serve.context import ServeContext
from celery_warden.serve.errors import ApiError
from celery_warden.serve.tokens import Scope, TokenInfo

COOKIE = "warden_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
Via = Literal["token", "cookie", "open"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request."""

    name: str
    scope: Scope
    via: Via


ANONYMOUS = Principal("anonymous", Scope.READ, "open")
#: Declares bearer auth in the OpenAPI schema (the header itself is read by :func:`identify`).
BEARER = HTTPBearer(auto_error=False, description="A token from `warden token create`.")


def same_origin(request: Request) -> bool:
    """``Sec-Fetch-Site: same-origin``, or an ``Origin`` equal to this request's origin."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin")
    if not origin:
        return False
    own = f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"
    return origin.rstrip("/").lower() == own.lower()


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    kind, _, value = header.partition(" ")
    if kind.lower() != "bearer" or not value.strip():
        raise ApiError(401, "invalid_token", "Authorization must be 'Bearer <token>'",
                       {"WWW-Authenticate": "Bearer"})
    return value.strip()


def loopback_host(request: Request) -> bool:
    """False when a loopback-bound server is asked for another host name: a page whose DNS
    name was rebound to 127.0.0.1 (``Host: evil.example``) reads nothing that is open."""
    server = request.scope.get("server")
    if not server or not is_loopback(str(server[0])):
        return True  # listening beyond loopback: the operator chose who may reach it
    host = request.headers.get("host", "")
    name = host[1:].partition("]")[0] if host.startswith("[") else host.rpartition(":")[0] or host
    return is_loopback(name.lower())


def open_for(ctx: ServeContext, scope: Scope) -> bool:
    s = ctx.settings
    return (scope is Scope.READ and s.api_open_reads) or (
        scope is Scope.METRICS and s.metrics_open)


async def identify(request: Request, ctx: ServeContext) -> Principal | None:
    """The caller from a bearer token or the session cookie (``None`` without either)."""
    secret = _bearer(request)
    if secret is not None:
        info: TokenInfo | None = await ctx.auth.check(secret)
        if info is None:
            raise ApiError(401, "invalid_token", "unknown or revoked token",
                           {"WWW-Authenticate": "Bearer"})
        return Principal(info.name, info.scope, "token")
    sid = request.cookies.get(COOKIE)
    if sid:
        info = await ctx.auth.session(sid)
        if info is None:
            raise ApiError(401, "session_expired", "session expired or its token revoked")
        if request.method not in SAFE_METHODS and not same_origin(request):
            raise ApiError(403, "cross_site",
                           "a state-changing request with a session cookie must be same-origin")
        return Principal(info.name, info.scope, "cookie")
    return None


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """Dependency: the caller, who must hold ``scope`` (or the endpoint is open)."""

    async def dependency(request: Request,
                         _: Annotated[HTTPAuthorizationCredentials | None,
                                      Security(BEARER)] = None) -> Principal:
        # The context straight from the app, not as a sub-dependency: one dependency fewer
        # for FastAPI to solve on every request (the route's own Ctx is solved once anyway).
        ctx: ServeContext = request.app.state.ctx
        try:
            principal = await identify(request, ctx)
        except ApiError as exc:  # a stale cookie does not close what is open anyway
            if exc.code != "session_expired" or not open_for(ctx, scope):
                raise
            principal = None
        if principal is None:
            if open_for(ctx, scope):
                if not loopback_host(request):
                    raise ApiError(403, "host_not_allowed", "open reads answer only requests "
                                   "for 127.0.0.1 or localhost; send a token")
                return ANONYMOUS
            raise ApiError(401, "unauthorized", f"this endpoint needs a token with scope "
                           f"{scope.value!r}", {"WWW-Authenticate": "Bearer"})
        if not principal.scope.covers(scope):
            if open_for(ctx, scope):
                return principal
            raise ApiError(403, "forbidden", f"this endpoint needs scope {scope.value!r}; "
                           f"{principal.name!r} has {principal.scope.value!r}")
        return principal

    dependency.__name__ = f"require_{scope.value}"
    return dependency


__all__ = ["ANONYMOUS", "COOKIE", "Principal", "Scope", "identify", "open_for", "require",
           "same_origin"]

#: The ``read`` check itself, for a route answered outside FastAPI (serve/hot_routes.py).
may_read = require(Scope.READ)
#: Route parameter aliases: ``def route(who: Reader, ...)``.
Reader = Annotated[Principal, Depends(may_read)]
Operator = Annotated[Principal, Depends(require(Scope.OPERATE))]
Admin = Annotated[Principal, Depends(require(Scope.ADMIN))]
Scraper = Annotated[Principal, Depends(require(Scope.METRICS))]
__all__ += ["Admin", "Operator", "Reader", "Scraper", "may_read"]
