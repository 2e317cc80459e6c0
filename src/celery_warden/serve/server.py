"""Run the API server: ``warden serve [--host 127.0.0.1] [--port 8000] [--workers N]``.

Binds loopback by default; any other address is refused until at least one token exists
(:mod:`.binding`). With ``--workers N`` uvicorn runs N processes, each building its app from the
environment (:func:`app_from_env`); the server is stateless, so they — and replicas on other
machines — answer alike.
"""

from __future__ import annotations

import os

import uvicorn
from celery import Celery
from celery.app.utils import find_app
from fastapi import FastAPI

from celery_warden.serve.app import create_app
from celery_warden.serve.binding import APP_ENV, check_bind
from celery_warden.services import services_for
from celery_warden.settings import WardenSettings, load_settings

#: Seconds a stopping server waits for open requests: the live stream's connections never end
#: by themselves, so without a bound SIGTERM would wait for every dashboard to close.
GRACEFUL_SHUTDOWN = 5


def app_from_env() -> FastAPI:
    """uvicorn factory for ``--workers N``: settings from the environment, the Celery app from
    ``WARDEN_CELERY_APP`` when set (with its Warden's settings)."""
    spec = os.environ.get(APP_ENV)
    celery_app = find_app(spec) if spec else None
    app = celery_app if isinstance(celery_app, Celery) else None
    services = services_for(app)
    return create_app(services.settings if services else load_settings(), celery_app=app)


def serve(settings: WardenSettings, host: str = "127.0.0.1", port: int = 8000,
          workers: int = 1, celery_app: Celery | None = None) -> None:
    """Run until interrupted (SIGINT/SIGTERM end it cleanly)."""
    check_bind(settings, host)
    level = settings.log_level.lower()
    if workers > 1:
        create_app(settings, celery_app=celery_app)  # refuses here, not in each worker
        uvicorn.run("celery_warden.serve.server:app_from_env", factory=True, host=host,
                    port=port, workers=workers, log_level=level, server_header=False,
                    timeout_graceful_shutdown=GRACEFUL_SHUTDOWN)
        return
    uvicorn.run(create_app(settings, celery_app=celery_app), host=host, port=port,
                log_level=level, server_header=False, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN)


__all__ = ["GRACEFUL_SHUTDOWN", "app_from_env", "serve"]
