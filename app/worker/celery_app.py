"""The Celery application. ``celery -A app.worker.celery_app worker|beat`` starts it.

Thin on purpose: configuration from :mod:`app.worker.config`, monitoring from one
``Warden(celery_app, settings)`` call, logging from :mod:`app.worker.logging_config`.
"""

from __future__ import annotations

from celery import Celery

from app.worker import logging_config
from app.worker.config import CELERY_CONFIG, settings
from celery_warden import Warden

celery_app = Celery(
    "app.worker",
    include=["app.worker.tasks.example", "app.worker.tasks.maintenance"],
)
celery_app.conf.update(CELERY_CONFIG)
logging_config.install(settings)
warden = Warden(celery_app, settings)

# ``celery -A app.worker.celery_app`` looks for an attribute named ``app`` or ``celery``.
app = celery_app

__all__ = ["app", "celery_app", "warden"]
