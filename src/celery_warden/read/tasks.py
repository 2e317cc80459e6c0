"""Task records, read: one task's status and the most recently updated tasks.

A lookup is one ``HGETALL`` of ``P:task:<id>`` (see :mod:`celery_warden.record.store` for how it
is written). Every answer is a plain JSON-ready dict; an unknown id is an answer, not an error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, cast

import redis

from celery_warden.keys import Keys
from celery_warden.redaction import Redactor, decode_preview
from celery_warden.settings import WardenSettings
from celery_warden.timefmt import iso


def _json(value: str | None, default: Any) -> Any:
    if not value:
        return default
    try:
        return json.loads(value)
    except ValueError:
        return default


def _num(value: str | None) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


_DEFAULT_REDACTOR = Redactor()


def task_status(task_id: str, raw: dict[str, str], now: float | None = None,
                redactor: Redactor | None = None) -> dict[str, Any]:
    """A stored task record as the API and CLI show it.

    The error message and the retry history are masked when they are recorded, and again here
    (``redactor``, default keys without one) for records stored before that: masking twice
    changes nothing.
    """
    r = redactor or _DEFAULT_REDACTOR
    error = task_error(raw.get("exc_type"), raw.get("exc_msg"), r)
    started, finished = _num(raw.get("started")), _num(raw.get("finished"))
    status: dict[str, Any] = {
        "task_id": task_id,
        "known": True,
        "state": raw.get("state", "PENDING"),
        "name": raw.get("name"),
        "queue": raw.get("queue"),
        "priority": _int(raw.get("priority")),
        "worker": raw.get("worker"),
        "pid": _int(raw.get("pid")),
        "retries": _int(raw.get("retries")) or 0,
        "sent_at": iso(raw.get("sent")),
        "eta": iso(raw.get("eta")),
        "received_at": iso(raw.get("received")),
        "started_at": iso(raw.get("started")),
        "finished_at": iso(raw.get("finished")),
        "runtime": _num(raw.get("runtime")),
        "queue_wait": _num(raw.get("wait")),
        "error": error,
        "reason": raw.get("reason"),
        "parent_id": raw.get("parent_id"),
        "root_id": raw.get("root_id"),
        # Redacted when recorded (secrets never reach the store); None before the start.
        "args": decode_preview(raw.get("args")),
        "kwargs": decode_preview(raw.get("kwargs")),
        "history": r.redact(_json(raw.get("history"), [])),
        "progress": _json(raw.get("progress"), None),
        "deliveries": _int(raw.get("deliveries")) or 1,
        "dlq_entry": raw.get("dlq_entry"),
        "dlq_reason": raw.get("dlq_reason"),
        "duplicate_of": raw.get("duplicate_of"),
        "idempotency_key": raw.get("idempotency_key"),
    }
    if started is not None and finished is None and status["state"] == "STARTED":
        status["elapsed"] = max(0.0, (time.time() if now is None else now) - started)
    return status


def task_error(exc_type: str | None, exc_msg: str | None,
               redactor: Redactor) -> dict[str, str] | None:
    """A record's error (type, masked message), ``None`` when it has no exception type."""
    if not exc_type:
        return None
    return {"type": exc_type, "message": redactor.redact_text(exc_msg or "")}


#: Stored fields a list item is made of (:func:`task_summary`).
SUMMARY_FIELDS = ("state", "name", "queue", "worker", "retries", "sent", "received", "started",
                  "finished", "runtime", "wait", "exc_type", "exc_msg", "dlq_entry",
                  "parent_id", "root_id")


#: Every key of a list item (:func:`task_summary`), its error's included.
ITEM_KEYS = ("task_id", "name", "state", "queue", "worker", "retries", "sent_at", "received_at",
             "started_at", "finished_at", "runtime", "queue_wait", "error", "type", "message",
             "dlq_entry", "parent_id", "root_id", "updated")


def task_summary(task_id: str, values: Sequence[str | None], updated: float,
                 redactor: Redactor) -> dict[str, Any]:
    """A list item from the record's :data:`SUMMARY_FIELDS` values (in that order, ``None``
    where absent): the fields of :func:`task_status` a task list shows, each computed the same
    way, plus ``updated`` (the record's index score).

    Its own function rather than a projection of :func:`task_status`: a search page shapes 50
    to 200 of them per request, and the full status also decodes the argument previews and
    the retry history, which a list item drops; taking the values as the search script returns
    them (no dict of the record in between) halves its cost
    (``tests/unit/test_task_search_response.py`` checks the two agree)."""
    (state, name, queue, worker, retries, sent, received, started, finished, runtime, wait,
     exc_type, exc_msg, dlq_entry, parent_id, root_id) = values
    return {
        "task_id": task_id,
        "name": name,
        "state": "PENDING" if state is None else state,
        "queue": queue,
        "worker": worker,
        "retries": _int(retries) or 0,
        "sent_at": iso(sent),
        "received_at": iso(received),
        "started_at": iso(started),
        "finished_at": iso(finished),
        "runtime": _num(runtime),
        "queue_wait": _num(wait),
        "error": task_error(exc_type, exc_msg, redactor),
        "dlq_entry": dlq_entry,
        "parent_id": parent_id,
        "root_id": root_id,
        "updated": updated,
    }


class TaskReader:
    """Reads task records from the store."""

    def __init__(self, settings: WardenSettings, client: redis.Redis) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.redis = client
        self.redactor = Redactor(settings.redact_keys)

    def unknown(self, task_id: str) -> dict[str, Any]:
        """No record (yet): PENDING, as Celery's own ``AsyncResult`` says for an id it does not
        know — a task just published from another process appears within one flush."""
        s = self.settings
        return {
            "task_id": task_id,
            "state": "PENDING",
            "known": False,
            "detail": "no record of this task id yet: a task published from another process is "
            f"recorded within WARDEN_FLUSH_INTERVAL ({s.flush_interval:g}s) of being sent; "
            "otherwise it was not published by an app with Warden installed, or its record "
            f"is older than WARDEN_TASK_TTL ({s.task_ttl}s)",
        }

    def status(self, task_id: str) -> dict[str, Any]:
        """State, timestamps, runtime, queue wait, worker, queue, retries and error of a task."""
        raw = cast(dict[str, str], self.redis.hgetall(self.keys.task(task_id)))
        return self.shape(task_id, raw)

    def shape(self, task_id: str, raw: dict[str, str]) -> dict[str, Any]:
        """:meth:`status` from the record's fields as read (``{}``: unknown), for a caller that
        read them itself (the API server awaits its asyncio client)."""
        return task_status(task_id, raw, redactor=self.redactor) if raw else self.unknown(task_id)

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        """The most recently updated tasks, newest first."""
        ids = cast(list[str], self.redis.zrevrange(self.keys.recent, 0, max(0, limit - 1)))
        pipe = self.redis.pipeline(transaction=False)
        for tid in ids:
            pipe.hgetall(self.keys.task(tid))
        return [task_status(tid, raw, redactor=self.redactor)
                for tid, raw in zip(ids, pipe.execute(), strict=True) if raw]


__all__ = ["ITEM_KEYS", "SUMMARY_FIELDS", "TaskReader", "task_error", "task_status",
           "task_summary"]
