"""Run the API server: ``warden serve [--host 127.0.0.1] [--port 8000] [--workers N]``.

Binds loopback by default. Any other address is refused until at least one token exists
(``warden token create``): an API that can requeue, purge and shut workers down must not be
reachable by the network without credentials. With ``--workers N`` uvicorn runs N processes,
each building its app from the environment (:func:`app_from_env`); the server is stateless, so
they — and replicas on other machines — answer alike.
"""

from __future__ import annotations

import ipaddress
import os

import uvicorn
from celery import Celery
from celery.app.utils import find_app
from fastapi import FastAPI

from celery_warden.errors import WardenError
from celery_warden.keys import Keys
from celery_warden.serve.app import create_app
from celery_warden.serve.tokens import TokenStore
from celery_warden.services import redis_client, services_for
from celery_warden.settings import WardenSettings, load_settings

#: Environment variable naming the Celery app (``proj`` of ``celery -A proj``) for workers.
APP_ENV = "WARDEN_CELERY_APP"


class ServeRefused(WardenError):
    """``warden serve`` will not start as asked (the message says why and what to do)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: WardenSettings, host: str) -> None:
    """Refuse a non-loopback ``host`` while no token exists."""
    if is_loopback(host):
        return
    client = redis_client(settings.redis_url)
    try:
        has_tokens = TokenStore(client, Keys(settings.key_prefix)).any()
    finally:
        client.close()
    if not has_tokens:
        raise ServeRefused(
            f"refusing to listen on {host}: no API token exists, so anyone who can reach it "
            "could read the fleet. Create one first (warden token create --scope admin "
            "--name ops), or bind 127.0.0.1.")


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
        uvicorn.run("celery_warden.serve.server:app_from_env", factory=True, host=host,
                    port=port, workers=workers, log_level=level, server_header=False)
        return
    uvicorn.run(create_app(settings, celery_app=celery_app), host=host, port=port,
                log_level=level, server_header=False)


__all__ = ["APP_ENV", "ServeRefused", "app_from_env", "check_bind", "is_loopback", "serve"]
