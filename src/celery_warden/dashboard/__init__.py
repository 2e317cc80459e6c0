"""The live web dashboard that ``warden serve`` serves at ``/``.

Every page is a server-rendered shell (layout, navigation, filter forms, empty containers) and a
small ES module that reads the public ``/api/v1`` with the session cookie and renders the JSON
with ``textContent`` only; live updates come from the ``/api/v1/stream`` server-sent events.
The dashboard holds no private path to Redis: what it shows, any API client can read.
"""

from __future__ import annotations

from celery_warden.dashboard.pages import STATIC_DIR, mount_static, router

__all__ = ["STATIC_DIR", "mount_static", "router"]
