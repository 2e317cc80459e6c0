"""Task listing and search: filters over the recent-task index, newest first, by cursor.

The store keeps one index of task ids by last update (``P:recent``, trimmed to the task TTL), so
a search walks it newest first and filters each record (one pipelined ``HGETALL`` per batch).
Two bounds keep every page cheap whatever the filter: a page holds at most ``limit`` (≤ 200)
items, and at most :data:`SCAN_BUDGET` records are examined per request. A page that ran out of
budget returns what it found with a cursor to go on from (``complete: false``), so a search for
something rare costs the client more requests, never the server a long one.

The cursor is ``<score>:<task id>`` of the last record examined: the next page starts strictly
after it (ties on the score are ordered by id, as ``ZREVRANGEBYSCORE`` orders them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis

from celery_warden.keys import Keys
from celery_warden.read.tasks import task_status
from celery_warden.redaction import Redactor

#: Records examined at most per page.
SCAN_BUDGET = 5_000
#: Records fetched per pipelined round trip.
BATCH = 250
#: Fields of a list item (the detail endpoint has the rest).
SUMMARY = ("task_id", "name", "state", "queue", "worker", "retries", "sent_at", "received_at",
           "started_at", "finished_at", "runtime", "queue_wait", "error", "dlq_entry",
           "parent_id", "root_id")


class CursorError(ValueError):
    """A cursor that this API did not hand out."""


@dataclass(frozen=True, slots=True)
class TaskFilter:
    state: str | None = None
    name: str | None = None
    queue: str | None = None
    worker: str | None = None
    since: float | None = None
    until: float | None = None
    id_prefix: str | None = None
    q: str | None = None

    def matches(self, task_id: str, raw: dict[str, str]) -> bool:
        if self.id_prefix and not task_id.startswith(self.id_prefix):
            return False
        if self.state and raw.get("state", "PENDING") != self.state.upper():
            return False
        if self.name and raw.get("name") != self.name:
            return False
        if self.queue and raw.get("queue") != self.queue:
            return False
        if self.worker and raw.get("worker") != self.worker:
            return False
        if self.q:
            needle = self.q.lower()
            hay = " ".join(raw.get(f, "") for f in ("exc_type", "exc_msg", "args", "kwargs"))
            if needle not in hay.lower():
                return False
        return True


def parse_cursor(cursor: str) -> tuple[float, str]:
    score, sep, task_id = cursor.partition(":")
    try:
        value = float(score)
    except ValueError:
        raise CursorError("invalid cursor") from None
    if not sep or value != value:  # NaN
        raise CursorError("invalid cursor")
    return value, task_id


class TaskSearch:
    """Lists tasks from the recent index with filters."""

    def __init__(self, client: redis.Redis, keys: Keys, redactor: Redactor) -> None:
        self.redis = client
        self.keys = keys
        self.redactor = redactor

    def page(self, f: TaskFilter, cursor: str | None = None, limit: int = 50,
             budget: int = SCAN_BUDGET) -> dict[str, Any]:
        """``{"items", "next_cursor", "complete", "examined"}``: ``next_cursor`` is ``None``
        when nothing older is left to examine."""
        top: float | str = "+inf" if f.until is None else f.until
        after: str | None = None
        if cursor:
            score, after = parse_cursor(cursor)
            top = score if f.until is None else min(score, f.until)
        floor: float | str = "-inf" if f.since is None else f.since
        items: list[dict[str, Any]] = []
        examined, offset = 0, 0
        last: tuple[float, str] | None = None
        exhausted = False
        while len(items) < limit and examined < budget:
            rows = cast(list[tuple[str, float]], self.redis.zrevrangebyscore(
                self.keys.recent, top, floor, start=offset, num=BATCH, withscores=True))
            if not rows:
                exhausted = True
                break
            offset += len(rows)
            if after is not None:  # skip what the previous page already examined
                rows = [(t, s) for t, s in rows if s < score or (s == score and t < after)]
            pipe = self.redis.pipeline(transaction=False)
            for task_id, _ in rows:
                pipe.hgetall(self.keys.task(task_id))
            for (task_id, ts), raw in zip(rows, pipe.execute(), strict=True):
                examined += 1
                last = (ts, task_id)
                if raw and f.matches(task_id, raw):
                    items.append(self.summary(task_id, raw, ts))
                if len(items) >= limit or examined >= budget:
                    break
        next_cursor = None
        if last is not None and not (exhausted and len(items) < limit):
            next_cursor = f"{last[0]!r}:{last[1]}"
        return {"items": items, "next_cursor": next_cursor,
                "complete": exhausted or len(items) >= limit, "examined": examined}

    def summary(self, task_id: str, raw: dict[str, str], ts: float) -> dict[str, Any]:
        full = task_status(task_id, raw, redactor=self.redactor)
        out = {k: full.get(k) for k in SUMMARY}
        out["updated"] = ts
        return out


__all__ = ["SCAN_BUDGET", "CursorError", "TaskFilter", "TaskSearch", "parse_cursor"]
