"""``warden serve``: the monitoring REST API (FastAPI on uvicorn), tokens, sessions, audit log.

:func:`create_app` builds the ASGI app; :func:`celery_warden.serve.server.serve` runs it.
"""

from celery_warden.serve.app import create_app

__all__ = ["create_app"]
