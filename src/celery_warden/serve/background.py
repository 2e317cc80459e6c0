"""Background work a server process runs for its lifetime, registered in one place.

Each entry of :data:`BACKGROUND` takes the :class:`ServeContext` and returns an async context
manager: entered when the server starts (after the context is built), exited when it stops.
The alert evaluator is one (its Redis lease makes several replicas evaluate once); the stream's
broadcaster is another (``serve/stream.py`` appends its own here).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from celery_warden.alerts.engine import Evaluator
from celery_warden.alerts.rulefile import RuleError
from celery_warden.serve.context import ServeContext

logger = logging.getLogger("celery_warden.serve")
Background = Callable[[ServeContext], AbstractAsyncContextManager[None]]


@asynccontextmanager
async def alert_evaluator(ctx: ServeContext) -> AsyncIterator[None]:
    """Runs the fleet's alert evaluator in threads of this process (one evaluates fleet-wide:
    whoever holds the lease). Off with ``WARDEN_SERVE_ALERTS=false``. A rules file that does
    not parse is logged and the server runs without an evaluator (``GET /api/v1/alerts``
    reports the error)."""
    if not ctx.settings.serve_alerts:
        yield
        return
    try:
        evaluator = Evaluator(ctx.settings, app=ctx.celery, monitor=ctx.monitor)
    except RuleError as exc:
        logger.error("alert evaluator not started: %s", exc)
        ctx.extras["alerts_error"] = str(exc)
        yield
        return
    evaluator.start()
    ctx.extras["evaluator"] = evaluator
    try:
        yield
    finally:
        await asyncio.to_thread(evaluator.stop)
        evaluator.close()


#: Started in this order, stopped in reverse.
BACKGROUND: list[Background] = [alert_evaluator]

__all__ = ["BACKGROUND", "Background", "alert_evaluator"]
