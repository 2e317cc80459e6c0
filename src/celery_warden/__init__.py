"""Celery Warden: the reliability and observability layer for Celery fleets.

``Warden(app)`` wires monitoring into an app; ``CeleryMonitor`` reads what was recorded;
``celery_config`` gives the recommended Celery settings; ``load_settings`` builds the typed
settings from the environment.
"""

from __future__ import annotations

from celery_warden.config import celery_config
from celery_warden.dlq.entry import DLQEntry
from celery_warden.dlq.store import DeadLetterQueue
from celery_warden.errors import (
    CircuitOpenError,
    DuplicateTaskError,
    EmbeddedRedisError,
    RateLimited,
    SettingsError,
    WardenError,
)
from celery_warden.fleet.breaker import CircuitBreaker
from celery_warden.fleet.idempotency import idempotent_task
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.settings import WardenSettings, load_settings
from celery_warden.tasks.backoff import Backoff
from celery_warden.tasks.base import BaseTask, CriticalTask, LongRunningTask, RetryableTask
from celery_warden.version import __version__
from celery_warden.warden import Warden

__all__ = [
    "Backoff",
    "BaseTask",
    "CeleryMonitor",
    "CircuitBreaker",
    "CircuitOpenError",
    "CriticalTask",
    "DLQEntry",
    "DeadLetterQueue",
    "DuplicateTaskError",
    "EmbeddedRedisError",
    "LongRunningTask",
    "RateLimited",
    "RetryableTask",
    "SettingsError",
    "Warden",
    "WardenError",
    "WardenSettings",
    "__version__",
    "celery_config",
    "idempotent_task",
    "load_settings",
]
