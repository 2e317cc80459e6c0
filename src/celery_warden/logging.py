"""Logging for worker, beat and ``warden`` processes: JSON lines or readable text.

``CELERY_JSON_LOGS=true`` gives one JSON object per line; otherwise a readable console format.
Celery's own loggers and the user's go through the same structlog ``ProcessorFormatter`` chain,
installed from Celery's ``setup_logging`` signal so Celery does not install its own handlers.
Inside a task, the Celery context (task id and name, retries, queue, parent/root ids) is added to
every line by :func:`add_celery_context`.
"""

from __future__ import annotations

import logging
import logging.config
import os
import sys
from typing import Any

import structlog
from celery import signals

from celery_warden.settings import WardenSettings

Processor = Any


def add_celery_context(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: the current task's context, when inside a task."""
    from celery import current_task

    task = current_task
    if task is None or not getattr(task, "request", None) or task.request.id is None:
        return event
    req = task.request
    event.setdefault("task_id", req.id)
    event.setdefault("task_name", task.name)
    event.setdefault("retries", req.retries)
    info = req.delivery_info or {}
    if info.get("routing_key"):
        event.setdefault("queue", info["routing_key"])
    if req.parent_id:
        event.setdefault("parent_id", req.parent_id)
    if req.root_id and req.root_id != req.id:
        event.setdefault("root_id", req.root_id)
    if req.hostname:
        event.setdefault("worker", req.hostname)
    return event


def add_process(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    event.setdefault("pid", os.getpid())
    return event


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_process,
        add_celery_context,
    ]


def logging_dict(settings: WardenSettings) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the chosen format and level."""
    if settings.json_logs:
        renderer: Processor = structlog.processors.JSONRenderer()
        pre: list[Processor] = [structlog.processors.dict_tracebacks]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        pre = []
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "warden": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *pre,
                    renderer,
                ],
                "foreign_pre_chain": _shared_processors(),
            }
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "warden",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": settings.log_level},
    }


def configure_logging(settings: WardenSettings, level: str | None = None) -> None:
    """Configure stdlib logging and structlog for this process."""
    config = logging_dict(settings)
    if level:
        config["root"]["level"] = level.upper()
    logging.config.dictConfig(config)
    structlog.configure(
        processors=[*_shared_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def install(settings: WardenSettings) -> None:
    """Take over Celery's logging set-up (``--loglevel`` still wins over CELERY_LOG_LEVEL)."""

    def _setup(loglevel: Any = None, **_: Any) -> None:
        level = logging.getLevelName(loglevel) if isinstance(loglevel, int) else loglevel
        explicit = "--loglevel" in " ".join(sys.argv) or "-l" in sys.argv
        configure_logging(settings, level if explicit and level else None)

    signals.setup_logging.connect(_setup, weak=False, dispatch_uid="celery_warden.logging")


__all__ = ["add_celery_context", "configure_logging", "install", "logging_dict"]
