"""The server's lifespan: what it leaves in place while requests are served."""

from __future__ import annotations

import asyncio
import gc

from celery_warden.serve.app import create_app


def test_objects_built_at_start_are_frozen_out_of_the_collector(settings_factory):
    """Once started, the server has moved what it built (modules, routes, schemas, context) out
    of the collector's reach: a full collection walking them on the event loop's thread was
    the lookup p99 of 70 ms at 1,000,000 records (9.7 ms after, ``bench/serve_api.py``)."""
    settings = settings_factory(WARDEN_SERVE_SAMPLER=False, WARDEN_SERVE_ALERTS=False)
    app = create_app(settings)
    seen: list[int] = []

    async def run() -> None:
        async with app.router.lifespan_context(app):
            seen.append(gc.get_freeze_count())

    gc.unfreeze()
    try:
        asyncio.run(run())
    finally:
        gc.unfreeze()  # this test process is not a server: give its objects back
    assert seen and seen[0] > 10_000
