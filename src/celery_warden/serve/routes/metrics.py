"""``GET /metrics``: the Prometheus text format, rendered from the store at each scrape.

Scope ``metrics`` (a scrape-only token; ``read``-and-above tokens do not cover it unless
``admin``), or open with ``WARDEN_METRICS_OPEN=true``. The collector keeps no state
(:mod:`celery_warden.serve.exporter`): any replica answers the same counters, and they never
decrease across restarts. The route is a plain ``def``, so the scrape's Redis and broker reads
run in the server's thread pool, not on the event loop.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from celery_warden.serve.auth import Scraper
from celery_warden.serve.context import Ctx, ServeContext
from celery_warden.serve.export_sources import ExportSources
from celery_warden.serve.exporter import exposition

router = APIRouter(tags=["metrics"])
#: The classic text format (0.0.4), which every Prometheus (2.x and 3.x) and agent reads; the
#: names and labels here are all legacy-valid, so it is exactly what ``generate_latest`` writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Where the sources are kept in ``ServeContext.extras`` (built on the first scrape).
EXTRA = "metrics_sources"


def sources_for(ctx: ServeContext) -> ExportSources:
    """This process's readers for the exporter (they hold clients, no values)."""
    sources = ctx.extras.get(EXTRA)
    if not isinstance(sources, ExportSources):
        sources = ctx.extras[EXTRA] = ExportSources(ctx.settings, ctx.redis, ctx.celery)
    return sources


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics (celery-exporter's names plus warden_*)",
    responses={200: {"content": {"text/plain": {}},
                     "description": "Prometheus text exposition format 0.0.4"}},
)
def metrics(who: Scraper, ctx: Ctx) -> Response:
    return Response(exposition(sources_for(ctx)), media_type=CONTENT_TYPE,
                    headers={"Cache-Control": "no-store"})


__all__ = ["CONTENT_TYPE", "router", "sources_for"]
