"""The audit log: every mutating API call, who made it, with what, and how it ended.

Stored in one sorted set (``P:api:audit``) scored by time, each member a JSON object with a
random id (so two identical calls in one millisecond are two entries). Bounded by age: every
write drops entries older than ``WARDEN_AUDIT_MAX_AGE`` in the same pipeline, and by count
(:data:`MAX_ENTRIES`) so a burst cannot grow it without bound either. Parameters are masked by
the redactor before they are written.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any, cast

import redis

from celery_warden.keys import Keys
from celery_warden.redaction import Redactor
from celery_warden.timefmt import iso

#: Most entries kept whatever their age.
MAX_ENTRIES = 100_000
#: Longest JSON of one entry's parameters (cut beyond).
MAX_PARAMS = 2_000


class AuditLog:
    """Write and read the audit log."""

    def __init__(self, client: redis.Redis, keys: Keys, redactor: Redactor,
                 max_age: int) -> None:
        self.redis = client
        self.keys = keys
        self.redactor = redactor
        self.max_age = max_age

    def write(self, who: str, via: str, action: str, target: str,
              params: dict[str, Any] | None, result: str, status: int) -> None:
        # The score is the entry's own ts (paging by ts is exact), to the microsecond: two calls
        # in one millisecond must keep their order (the members, random ids first, would not).
        now = round(time.time(), 6)
        shown = json.dumps(self.redactor.redact(params or {}), default=str)
        entry = {
            "id": secrets.token_hex(8), "ts": now, "who": who, "via": via,
            "action": action, "target": self.redactor.redact_text(target)[:300],
            "params": shown if len(shown) <= MAX_PARAMS else shown[:MAX_PARAMS] + "…",
            "result": self.redactor.redact_text(result)[:500], "status": status,
        }
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(self.keys.api_audit, {json.dumps(entry): now})
        pipe.zremrangebyscore(self.keys.api_audit, "-inf", now - self.max_age)
        pipe.zremrangebyrank(self.keys.api_audit, 0, -MAX_ENTRIES - 1)
        pipe.execute()

    def read(self, limit: int = 100, before: float | None = None, who: str | None = None,
             action: str | None = None) -> list[dict[str, Any]]:
        """Entries newest first (``before``: older than this time, for paging)."""
        top = "+inf" if before is None else f"({before}"
        floor = time.time() - self.max_age
        out: list[dict[str, Any]] = []
        offset, batch = 0, max(limit, 100)
        while len(out) < limit:
            raw = cast(list[str], self.redis.zrevrangebyscore(
                self.keys.api_audit, top, floor, start=offset, num=batch))
            if not raw:
                break
            offset += len(raw)
            for member in raw:
                try:
                    entry = json.loads(member)
                except ValueError:
                    continue
                if (who and entry.get("who") != who) or (action and entry.get("action") != action):
                    continue
                entry["at"] = iso(entry.get("ts"))
                out.append(entry)
                if len(out) >= limit:
                    break
        return out


__all__ = ["AuditLog"]
