"""Celery configuration for the reference app: Warden's recommended settings plus our routes.

Everything comes from the environment through ``load_settings()`` (see the README's
configuration table); an invalid value stops start-up with a message naming the variable.
"""

from __future__ import annotations

from celery.schedules import crontab

from celery_warden import celery_config, load_settings
from celery_warden.config import WardenRouter, queue_name

settings = load_settings()

CELERY_CONFIG = celery_config(
    settings,
    task_routes=[
        WardenRouter(settings),
        {"maintenance.*": {"queue": queue_name(settings, "low_priority")}},
    ],
    beat_schedule={
        "prune-store-indexes": {
            "task": "maintenance.prune_store",
            "schedule": crontab(minute="*/15"),
        },
        "expire-dlq": {
            "task": "maintenance.expire_dlq",
            "schedule": crontab(minute=7),
        },
        "process-dlq": {
            "task": "maintenance.process_dlq",
            "schedule": 300.0,
        },
        "log-kpis": {
            "task": "maintenance.log_kpis",
            "schedule": 60.0,
        },
    },
)
