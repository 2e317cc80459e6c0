"""Error groups, read: failures grouped by fingerprint (see :mod:`celery_warden.dlq.groups`)."""

from __future__ import annotations

import builtins
import time
from typing import Any, cast

import redis

from celery_warden.keys import Keys, minute_of
from celery_warden.redaction import Redactor
from celery_warden.services import redis_client
from celery_warden.settings import WardenSettings

#: Recent task ids returned per group (the flusher keeps at most this many).
RECENT_TASK_IDS = 20


class ErrorGroups:
    """Read side of the error groups."""

    def __init__(self, settings: WardenSettings, client: redis.Redis | None = None) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.redis = client or redis_client(settings.redis_url)
        self.redactor = Redactor(settings.redact_keys)

    def _text(self, value: str | None) -> str | None:
        # Masked when written; masked again here for groups stored before that (idempotent).
        return None if value is None else self.redactor.redact_text(value)

    def _group(self, fp: str, raw: dict[str, str], ids: list[str]) -> dict[str, Any]:
        names = {k[5:]: int(v) for k, v in raw.items() if k.startswith("name:")}
        return {
            "fingerprint": fp,
            "count": int(raw.get("count", 0)),
            "exc_type": raw.get("exc_type"),
            "message": self._text(raw.get("message")),
            "sample_message": self._text(raw.get("sample_message")),
            "frame": raw.get("frame"),
            "first_seen": float(raw["first_seen"]) if raw.get("first_seen") else None,
            "last_seen": float(raw["last_seen"]) if raw.get("last_seen") else None,
            "task_names": names,
            "recent_task_ids": ids,
            "sample_traceback": self._text(raw.get("traceback")),
        }

    def list(self, limit: int = 20, window: int | None = None) -> list[dict[str, Any]]:
        """Groups by last occurrence, newest first; with ``window`` (s), only groups seen in it,
        each with ``count_in_window`` from the per-minute counters."""
        now = time.time()
        lo: float | str = "-inf" if window is None else now - window
        fps = cast(list[str], self.redis.zrevrangebyscore(self.keys.error_groups, "+inf", lo,
                                                          0, limit))
        pipe = self.redis.pipeline(transaction=False)
        for fp in fps:
            pipe.hgetall(self.keys.error_group(fp))
            pipe.lrange(self.keys.error_group_tasks(fp), 0, RECENT_TASK_IDS - 1)
        results = pipe.execute()
        groups = []
        for i, fp in enumerate(fps):
            raw, ids = results[2 * i], results[2 * i + 1]
            if raw:
                groups.append(self._group(fp, raw, ids))
        if window is not None and groups:
            minutes = range(minute_of(now - window), minute_of(now) + 1, 60)
            pipe = self.redis.pipeline(transaction=False)
            for g in groups:
                pipe.mget([self.keys.error_group_minute(g["fingerprint"], m) for m in minutes])
            for g, counts in zip(groups, pipe.execute(), strict=True):
                g["count_in_window"] = sum(int(c) for c in counts if c)
        return groups

    def get(self, fp: str) -> dict[str, Any] | None:
        raw = cast(dict[str, str], self.redis.hgetall(self.keys.error_group(fp)))
        if not raw:
            return None
        ids = cast(list[str], self.redis.lrange(self.keys.error_group_tasks(fp), 0, -1))
        return self._group(fp, raw, ids)

    def series(self, fp: str, minutes: int = 60) -> builtins.list[dict[str, int]]:
        """Failures of one group per minute over the last ``minutes``, oldest first."""
        last = minute_of(time.time())
        starts = list(range(last - (minutes - 1) * 60, last + 1, 60))
        counts = self.redis.mget([self.keys.error_group_minute(fp, m) for m in starts])
        return [{"ts": m, "count": int(c) if c else 0}
                for m, c in zip(starts, counts, strict=True)]


__all__ = ["RECENT_TASK_IDS", "ErrorGroups"]
