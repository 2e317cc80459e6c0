"""Logging for the reference app: Warden's JSON/console logging.

``CELERY_JSON_LOGS=true`` → one JSON object per line from the worker, beat and their pool
children (Celery's own loggers and ours); ``CELERY_LOG_LEVEL`` sets the level unless
``--loglevel`` is given on the command line; ``WARDEN_REDACT_KEYS`` adds secret key names;
``WARDEN_LOG_FLOOD_LIMIT`` / ``WARDEN_LOG_FLOOD_WINDOW`` cap repeated errors. The fields and
choices are documented in ``docs/logging.md``; ``celery_app.py`` calls :func:`install`.
"""

from __future__ import annotations

from celery_warden.logs.setup import configure_logging, install, logging_dict

__all__ = ["configure_logging", "install", "logging_dict"]
