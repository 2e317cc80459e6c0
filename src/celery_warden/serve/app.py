"""``create_app()``: the ASGI app of ``warden serve``.

One place composes it: every router of :data:`~celery_warden.serve.routes.ROUTERS`, the JSON
error handlers, the security headers, and a lifespan that builds the :class:`ServeContext`
(``app.state.ctx``) and runs the background work of :data:`~celery_warden.serve.background.
BACKGROUND` (alert evaluator, stream broadcaster) for as long as the server runs. Nothing in
``serve/`` imports this module back: parts are handed the context.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from celery import Celery
from fastapi import FastAPI

from celery_warden.dashboard import mount_static
from celery_warden.serve.background import BACKGROUND
from celery_warden.serve.context import ServeContext
from celery_warden.serve.errors import install_error_handlers
from celery_warden.serve.hot_routes import hot_routes
from celery_warden.serve.limits import BodyLimit
from celery_warden.serve.own_fields import check_redaction
from celery_warden.serve.routes import ROUTERS
from celery_warden.serve.security import SecurityHeaders
from celery_warden.settings import WardenSettings, load_settings
from celery_warden.version import __version__

DESCRIPTION = """Celery Warden's monitoring API. Reads need a token with scope `read` (unless
`WARDEN_API_OPEN_READS=true`); mutations need `operate` or `admin` and are written to the audit
log. Send `Authorization: Bearer <token>` (`warden token create --scope read --name me`).
Errors are always `{"error": {"code", "message"}}`."""


def create_app(settings: WardenSettings | None = None, *,
               celery_app: Celery | None = None) -> FastAPI:
    """The API server's app for ``settings`` (from the environment when ``None``), reading
    the broker through ``celery_app`` (one configured from the settings when ``None``)."""
    resolved = settings if settings is not None else load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = ServeContext.build(resolved, celery_app)
        app.state.ctx = ctx
        try:
            async with AsyncExitStack() as stack:
                for start in BACKGROUND:
                    await stack.enter_async_context(start(ctx))
                # Everything built so far (modules, routes, schemas, the context) lives as long
                # as the server: out of the collector's reach, a full collection no longer walks
                # it on the event loop's thread while requests wait.
                gc.freeze()
                yield
        finally:
            await ctx.aclose()
            ctx.close()

    app = FastAPI(
        title="Celery Warden API", version=__version__, description=DESCRIPTION,
        lifespan=lifespan, openapi_url="/api/openapi.json", docs_url=None, redoc_url=None,
    )
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.router.routes[0:0] = hot_routes()  # answered first; FastAPI's document them
    mount_static(app)
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders)  # outermost: on every answer, 413s included
    check_redaction(resolved, app)  # a redaction key that masks Warden's numbers: refused
    return app


__all__ = ["create_app"]
