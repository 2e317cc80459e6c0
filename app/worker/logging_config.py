"""Logging for the reference app: Warden's JSON/console logging driven by CELERY_JSON_LOGS
and CELERY_LOG_LEVEL (``--loglevel`` on the command line still wins)."""

from __future__ import annotations

from celery_warden.logging import configure_logging, install

__all__ = ["configure_logging", "install"]
