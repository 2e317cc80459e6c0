"""Where ``warden serve`` may listen: loopback always; any other address only once a token
exists — an API that can requeue, purge and shut workers down must not be reachable by the
network without credentials.

Kept apart from :mod:`.server` (uvicorn, the app and its routes) so the CLI can check and
report without importing them.
"""

from __future__ import annotations

import ipaddress

from celery_warden.errors import WardenError
from celery_warden.keys import Keys
from celery_warden.serve.tokens import TokenStore
from celery_warden.services import redis_client
from celery_warden.settings import WardenSettings

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


__all__ = ["APP_ENV", "ServeRefused", "check_bind", "is_loopback"]
