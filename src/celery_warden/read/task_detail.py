"""One task in full: its record, a timeline of what happened to it, and its workflow.

The timeline is rebuilt from the record: ``sent`` (the first publish: a retry's re-publish is
kept apart as ``resent``), ``eta``, each retry from the retry history the base task keeps (when,
the error, the delay chosen; a plain Celery task has no history, so its latest re-publish is
shown as ``republished``), ``received`` and ``started``
of the latest delivery (earlier deliveries' are replaced by the store), the outcome
(``succeeded``, ``failed``, ``deferred`` with its reason, ``revoked``, ``rejected``) and the DLQ
entry when it was dead-lettered.

The workflow: ``parent`` and ``root`` come from the record (Celery's ``parent_id`` and
``root_id``: chains, chords, tasks sent from tasks); ``children`` are found by walking the
recent-task index from the task's send time onwards — at most :data:`CHILD_SCAN` records, so
``children_complete`` says whether the walk saw everything newer.
"""

from __future__ import annotations

from typing import Any, cast

import redis

from celery_warden import scripts
from celery_warden.keys import Keys
from celery_warden.read.tasks import task_status
from celery_warden.redaction import Redactor

#: Newer task records examined to find a task's children.
CHILD_SCAN = 2_000
#: Children listed at most.
MAX_CHILDREN = 100
_OUTCOMES = {"SUCCESS": "succeeded", "FAILURE": "failed", "REVOKED": "revoked",
             "REJECTED": "rejected", "DEFERRED": "deferred", "RETRY": "retry_scheduled",
             "IGNORED": "ignored"}


def _num(value: Any) -> float | None:
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def timeline(status: dict[str, Any], raw: dict[str, str]) -> list[dict[str, Any]]:
    """Events in time order (each ``{event, ts, ...}``; ``ts`` in epoch seconds)."""
    events: list[dict[str, Any]] = []

    def add(event: str, ts: float | None, **extra: Any) -> None:
        if ts is not None:
            events.append({"event": event, "ts": ts, **extra})

    add("sent", _num(raw.get("sent")), queue=status.get("queue"))
    if raw.get("eta"):
        add("eta", _num(raw.get("eta")))
    history = [e for e in status.get("history") or [] if isinstance(e, dict)]
    for entry in history:
        add("retry", _num(entry.get("at")), attempt=entry.get("attempt"),
            exc_type=entry.get("exc_type"), message=entry.get("exc_msg"),
            delay=entry.get("delay"), worker=entry.get("worker"))
    if not history:  # a plain Celery task's retry: only its latest re-publish is known
        add("republished", _num(raw.get("resent")), retries=status.get("retries"))
    add("received", _num(raw.get("received")), worker=status.get("worker"))
    add("started", _num(raw.get("started")), worker=status.get("worker"),
        pid=status.get("pid"), queue_wait=status.get("queue_wait"))
    state = status.get("state", "")
    if state in _OUTCOMES:
        error = status.get("error") or {}
        add(_OUTCOMES[state], _num(raw.get("finished")), state=state,
            runtime=status.get("runtime"), exc_type=error.get("type"),
            message=error.get("message"), reason=status.get("reason"))
    if status.get("dlq_entry"):
        last = max((e["ts"] for e in events), default=None)
        add("dead_lettered", last, entry=status["dlq_entry"], reason=status.get("dlq_reason"))
    events.sort(key=lambda e: e["ts"])
    return events


class TaskDetail:
    """Reads one task with its timeline and workflow."""

    def __init__(self, client: redis.Redis, keys: Keys, redactor: Redactor) -> None:
        self.redis = client
        self.keys = keys
        self.redactor = redactor

    def get(self, task_id: str) -> dict[str, Any] | None:
        raw = cast(dict[str, str], self.redis.hgetall(self.keys.task(task_id)))
        if not raw:
            return None
        status = task_status(task_id, raw, redactor=self.redactor)
        status["timeline"] = timeline(status, raw)
        status["workflow"] = self.workflow(task_id, raw)
        return status

    def _brief(self, task_id: str | None) -> dict[str, Any] | None:
        if not task_id:
            return None
        name, state = cast(list[str | None], self.redis.hmget(self.keys.task(task_id),
                                                               "name", "state"))
        return {"task_id": task_id, "name": name, "state": state, "known": name is not None}

    def workflow(self, task_id: str, raw: dict[str, str]) -> dict[str, Any]:
        parent_id, root_id = raw.get("parent_id"), raw.get("root_id")
        since = _num(raw.get("sent")) or _num(raw.get("received")) or _num(raw.get("started"))
        children, complete = self.children(task_id, since or 0.0)
        return {
            "parent": self._brief(parent_id),
            "root": self._brief(root_id) if root_id and root_id != task_id else None,
            "is_root": not root_id or root_id == task_id,
            "group": raw.get("group") or None,
            "children": children,
            "children_complete": complete,
        }

    def children(self, task_id: str, since: float) -> tuple[list[dict[str, Any]], bool]:
        """Tasks whose parent is ``task_id``, updated at or after ``since`` (oldest first).
        The walk runs in Redis (``lua/task_children.lua``, one round trip)."""
        reply = scripts.script(self.redis, "task_children")(
            keys=[self.keys.recent],
            args=[self.keys.task(""), task_id, repr(since - 1.0), CHILD_SCAN, MAX_CHILDREN])
        complete = bool(int(reply[0]))
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in reply[1:]]
        pipe = self.redis.pipeline(transaction=False)
        for tid in ids:
            pipe.hmget(self.keys.task(tid), "name", "state")
        found = [{"task_id": tid, "name": name, "state": state}
                 for tid, (name, state) in zip(ids, pipe.execute(), strict=True)]
        return found, complete


__all__ = ["CHILD_SCAN", "TaskDetail", "timeline"]
