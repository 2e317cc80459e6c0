"""Celery configuration for the reference app: Warden's recommended settings plus our routes.

Everything comes from the environment through ``load_settings()`` (see the README's
configuration table); an invalid value stops start-up with a message naming the variable.
"""

from __future__ import annotations

import os

from celery.schedules import crontab

from celery_warden import celery_config, load_settings
from celery_warden.config import WardenRouter, queue_name

# The spec: failed tasks reach the DLQ when "unhandled exceptions occur" — for every task, not
# only those on Warden's base classes. The library leaves that to each project
# (WARDEN_DLQ_ALL_TASKS); the reference app turns it on unless the environment says otherwise.
settings = load_settings(
    **({} if "WARDEN_DLQ_ALL_TASKS" in os.environ else {"WARDEN_DLQ_ALL_TASKS": True}))

CELERY_CONFIG = celery_config(
    settings,
    task_routes=[
        WardenRouter(settings),
        # `default`: the spec starts workers with --queues=default,high_priority, and beat's
        # maintenance must run there (`warden status` warns when a queue beat feeds has no
        # consumer).
        {"maintenance.*": {"queue": queue_name(settings, "default")}},
    ],
    beat_schedule={
        "prune-store-indexes": {
            "task": "maintenance.prune_store",
            "schedule": crontab(minute="*/15"),
        },
        # The success-record policy and the record cap: a sweep a minute keeps the store
        # within WARDEN_RECORDS_MAX_MB plus one minute of arrivals.
        "apply-retention": {
            "task": "maintenance.apply_retention",
            "schedule": 60.0,
            "options": {"expires": 60.0},
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
        # Alerts keep working with only workers and beat; an evaluator elsewhere (`warden
        # serve`, `warden alerts run`) holds the lease and this round then does nothing. A
        # round not run within one interval is dropped, never piled up.
        "evaluate-alerts": {
            "task": "maintenance.evaluate_alerts",
            "schedule": settings.alert_interval,
            "options": {"expires": settings.alert_interval},
        },
    },
)
