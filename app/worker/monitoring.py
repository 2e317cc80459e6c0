"""``monitor``: Warden's read side for this app.

The spec's usage: ``from app.worker.monitoring import monitor``.
"""

from __future__ import annotations

from app.worker.celery_app import celery_app
from app.worker.config import settings
from celery_warden import CeleryMonitor

monitor = CeleryMonitor(settings, app=celery_app)

__all__ = ["monitor"]
