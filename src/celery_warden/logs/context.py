"""The structlog processors that turn a log call into Warden's JSON line.

A processor is ``(logger, method_name, event_dict) -> event_dict``. The chain, in order (built
by :func:`celery_warden.logs.setup.processor_chain`):

1. ``merge_contextvars`` — anything bound with ``structlog.contextvars.bind_contextvars``;
2. :func:`add_timestamp` — ``timestamp``, ISO 8601 UTC from the record's creation time;
3. ``add_log_level`` / ``add_logger_name`` — ``level`` (lower case) and ``logger``;
4. :func:`add_process` — ``pid`` and ``process_name`` (``MainProcess``, ``ForkPoolWorker-1``);
5. :func:`add_celery_context` — ``hostname`` and, inside a task, ``task_id``, ``task_name``,
   ``queue``, ``retries``, ``parent_id``, ``root_id``, ``correlation_id``, ``group_id``;
6. ``tracing.add_trace_ids`` — ``trace_id`` / ``span_id`` of the current span (with OTel);
7. :func:`add_extras` — a stdlib record's ``extra={...}`` fields;
8. :func:`structure_exception` (JSON) — ``exception: {type, message, stack}``;
9. :class:`RedactProcessor` — masks secrets in every field;
10. ``EventRenamer("message")`` and :func:`order_fields` (JSON), then the renderer.

Stdlib records (Celery's own loggers, the user's) run steps 1-7 in the formatter as
``foreign_pre_chain``; structlog loggers run them at the call site.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from celery import current_task
from structlog.typing import EventDict

from celery_warden.redaction import MASK, Redactor

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]

#: Fields a JSON line starts with, in this order (the rest follow as added).
FIRST_FIELDS = ("timestamp", "level", "logger", "message")
#: Longest exception stack kept in one line (characters; the end, where the error is, is kept).
MAX_STACK = 16_000

#: The worker's node name (``celery@host``), set by the ``celeryd_init`` signal in the worker's
#: main process and inherited by its pool children; the machine's host name elsewhere.
_node: dict[str, str] = {"hostname": socket.gethostname()}
# Attributes every LogRecord has: anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "_logger", "_name", "taskName",
}
#: ``extra`` keys Celery passes with its own log lines that duplicate the message and the task
#: context (``data`` carries args/kwargs reprs and the traceback text) — dropped.
_CELERY_EXTRAS = frozenset({"data"})


def set_hostname(hostname: str) -> None:
    """Record the worker's node name for the ``hostname`` field of this process's lines."""
    _node["hostname"] = hostname


def hostname() -> str:
    return _node["hostname"]


def add_timestamp(_: Any, __: str, event: EventDict) -> EventDict:
    record = event.get("_record")
    ts = record.created if record is not None else time.time()
    event["timestamp"] = (
        datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    )
    return event


def add_process(_: Any, __: str, event: EventDict) -> EventDict:
    record = event.get("_record")
    if record is not None:
        event.setdefault("pid", record.process)
        event.setdefault("process_name", record.processName)
    else:
        event.setdefault("pid", os.getpid())
        mp = sys.modules.get("multiprocessing")  # what LogRecord.processName reads too
        if mp is not None:
            event.setdefault("process_name", mp.current_process().name)
    return event


def add_celery_context(_: Any, __: str, event: EventDict) -> EventDict:
    """``hostname`` always; the current task's request fields when inside a task."""
    task = current_task
    req = getattr(task, "request", None) if task is not None else None
    task_id = getattr(req, "id", None)
    if req is None or task_id is None:
        event.setdefault("hostname", _node["hostname"])
        return event
    event.setdefault("hostname", req.hostname or _node["hostname"])
    event.setdefault("task_id", task_id)
    event.setdefault("task_name", task.name)
    info = req.delivery_info or {}
    queue = info.get("routing_key") or info.get("exchange")
    if queue:
        event.setdefault("queue", queue)
    event.setdefault("retries", req.retries or 0)
    if req.parent_id:
        event.setdefault("parent_id", req.parent_id)
    if req.root_id:
        event.setdefault("root_id", req.root_id)
    event.setdefault("correlation_id", req.correlation_id or task_id)
    if req.group:
        event.setdefault("group_id", req.group)
    return event


def add_extras(_: Any, __: str, event: EventDict) -> EventDict:
    """A stdlib record's ``extra={...}`` fields (never overriding the ones above)."""
    record = event.get("_record")
    if record is None or event.get("_from_structlog"):
        return event
    celery = record.name.startswith("celery")
    for key, value in record.__dict__.items():
        if key in _RECORD_ATTRS or key.startswith("_") or (celery and key in _CELERY_EXTRAS):
            continue
        event.setdefault(key, value)
    return event


def _exc_info(value: Any) -> ExcInfo | None:
    if value is True:
        value = sys.exc_info()
    if isinstance(value, BaseException):
        return (type(value), value, value.__traceback__)
    if isinstance(value, tuple) and len(value) == 3 and value[0] is not None:
        return value
    return None


def structure_exception(_: Any, __: str, event: EventDict) -> EventDict:
    """``exc_info`` → ``exception: {type, message, stack}`` (one JSON value, never many lines)."""
    exc_info = _exc_info(event.pop("exc_info", None))
    if exc_info is None:
        return event
    etype, exc, tb = exc_info
    stack = "".join(traceback.format_exception(etype, exc, tb)).rstrip()
    if len(stack) > MAX_STACK:
        stack = "…" + stack[-MAX_STACK:]
    event["exception"] = {
        "type": etype.__qualname__ if etype.__module__ == "builtins"
        else f"{etype.__module__}.{etype.__qualname__}",
        "message": str(exc),
        "stack": stack,
    }
    return event


def render_stack_info(_: Any, __: str, event: EventDict) -> EventDict:
    """``stack_info`` (``logger.info(..., stack_info=True)``) as a plain string field."""
    info = event.pop("stack_info", None)
    if isinstance(info, str):
        event["stack"] = info
    return event


class RedactProcessor:
    """Masks secrets in every field of a log line (see :mod:`celery_warden.redaction`)."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    def __call__(self, _: Any, __: str, event: EventDict) -> EventDict:
        r = self.redactor
        for key, value in event.items():
            if r.is_secret(key):
                event[key] = MASK
            elif isinstance(value, str):
                event[key] = r.redact_text(value)
            elif isinstance(value, dict | list | tuple):
                event[key] = r.redact(value)
        return event


def order_fields(_: Any, __: str, event: EventDict) -> EventDict:
    """Put ``timestamp, level, logger, message`` first, for people reading raw lines."""
    head = {k: event.pop(k) for k in FIRST_FIELDS if k in event}
    head.update(event)
    return head


__all__ = [
    "RedactProcessor", "add_celery_context", "add_extras", "add_process", "add_timestamp",
    "hostname", "order_fields", "render_stack_info", "set_hostname", "structure_exception",
]
