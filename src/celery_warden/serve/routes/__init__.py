"""Every router of the API, in one place (``create_app`` includes exactly these).

A router module is ``serve/routes/<resource>.py`` exposing ``router: APIRouter``.
"""

from __future__ import annotations

from fastapi import APIRouter

from celery_warden.serve.routes import (
    alerts,
    audit,
    breakers,
    dlq,
    docs,
    errors,
    monitoring,
    performance,
    queues,
    session,
    tasks,
    tokens,
    workers,
)

ROUTERS: list[APIRouter] = [
    session.router,
    monitoring.router,
    tasks.router,
    performance.router,
    queues.router,
    workers.router,
    dlq.router,
    errors.router,
    breakers.router,
    alerts.router,
    audit.router,
    tokens.router,
    docs.router,
]

__all__ = ["ROUTERS"]
