"""Celery Warden: the reliability and observability layer for Celery fleets.

``Warden(app)`` wires monitoring into an app; ``CeleryMonitor`` reads what was recorded;
``celery_config`` gives the recommended Celery settings; ``load_settings`` builds the typed
settings from the environment.
"""

from __future__ import annotations

__version__ = "0.1.0"

from celery_warden.config import celery_config
from celery_warden.errors import EmbeddedRedisError, SettingsError, WardenError
from celery_warden.monitor import CeleryMonitor
from celery_warden.settings import WardenSettings, load_settings
from celery_warden.warden import Warden

__all__ = [
    "CeleryMonitor",
    "EmbeddedRedisError",
    "SettingsError",
    "Warden",
    "WardenError",
    "WardenSettings",
    "__version__",
    "celery_config",
    "load_settings",
]
