"""The dead letter queue: failed tasks kept with everything needed to understand and replay them.

RQ's ``FailedJobRegistry`` is the model: a sorted set scored by time, one hash per entry with the
original message and the failure, ``requeue`` back to the origin queue, expiry by age.

Life of an entry::

    add ──▶ pending ──claim──▶ claimed ──publish ok──▶ requeued (leaves the DLQ)
               ▲   │              │  └─ lease expires ──▶ pending (another processor may take it)
               │   └──park──▶ parked (manual review; never requeued automatically)
               └──── the requeued task fails again: same entry, requeues + 1

Requeue guarantees are in :mod:`celery_warden.dlq.processor`.
Entries are written synchronously at the moment of failure (before the message is
  acknowledged); if Redis is unreachable then, the entry is logged at CRITICAL with its full
  content so it can be recovered from logs.
"""

from __future__ import annotations

import time
from typing import Any, cast

import redis
from celery import Celery

from celery_warden.config import celery_config
from celery_warden.dlq.entry import DLQEntry
from celery_warden.dlq.processor import DLQProcessor
from celery_warden.keys import Keys
from celery_warden.redaction import Redactor
from celery_warden.services import redis_client
from celery_warden.settings import WardenSettings


class DeadLetterQueue:
    """DLQ store and processing. Thread-safe; one per process is plenty."""

    def __init__(self, settings: WardenSettings, app: Celery | None = None,
                 client: redis.Redis | None = None) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.redis = client or redis_client(settings.redis_url)
        self._app = app
        self.redactor = Redactor(settings.redact_keys)
        self.processor = DLQProcessor(self)

    @property
    def app(self) -> Celery:
        if self._app is None:
            self._app = Celery("celery_warden.dlq.store", set_as_current=False)
            self._app.conf.update(celery_config(self.settings))
        return self._app

    # -- writing -----------------------------------------------------------------------------
    def add(self, entry: DLQEntry) -> DLQEntry:
        """Store an entry (or update the entry of a requeued task that failed again)."""
        now = time.time()
        entry.last_failed = entry.last_failed or now
        entry.first_failed = entry.first_failed or entry.last_failed
        if entry.status not in ("pending", "parked"):
            entry.status = "pending"
        if entry.status == "pending" and (
            not entry.replayable or entry.requeues >= self.settings.dlq_max_requeues
        ):
            entry.status = "parked"
        k = self.keys
        key = k.dlq_entry(entry.id)
        fields = entry.to_hash()
        first = fields.pop("first_failed")
        fields.pop("failures", None)
        if not entry.requeued_task_ids:  # a requeued task failing again keeps the earlier ids
            fields.pop("requeued_task_ids", None)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hsetnx(key, "first_failed", first)
        pipe.hset(key, mapping=cast(Any, fields))
        pipe.hincrby(key, "failures", 1)
        pipe.hdel(key, "claim_token")
        pipe.expire(key, self.settings.dlq_max_age + 24 * 3600)
        pipe.zadd(k.dlq, {entry.id: entry.last_failed})
        pipe.zrem(k.dlq_claims, entry.id)
        if entry.status == "pending":
            pipe.zadd(k.dlq_ready, {entry.id: entry.last_failed})
        else:
            pipe.zrem(k.dlq_ready, entry.id)
        pipe.hincrby(k.dlq_stats, "added", 1)
        pipe.hincrby(k.dlq_stats, f"reason:{entry.reason}", 1)
        pipe.execute()
        return entry

    # -- reading -----------------------------------------------------------------------------
    def get(self, entry_id: str) -> DLQEntry | None:
        raw = cast(dict[str, str], self.redis.hgetall(self.keys.dlq_entry(entry_id)))
        return DLQEntry.from_hash(raw) if raw else None

    def size(self) -> int:
        """Entries in the DLQ (pending, claimed and parked)."""
        return int(self.redis.zcard(self.keys.dlq))

    def stats(self) -> dict[str, Any]:
        raw = cast(dict[str, str], self.redis.hgetall(self.keys.dlq_stats))
        counts = {k: int(v) for k, v in raw.items()}
        return {"size": self.size(), "ready": int(self.redis.zcard(self.keys.dlq_ready)),
                "claimed": int(self.redis.zcard(self.keys.dlq_claims)), **counts}

    def list_entries(self, limit: int = 50, offset: int = 0, task_name: str | None = None,
             reason: str | None = None, status: str | None = None,
             older_than: float | None = None, newer_than: float | None = None,
             page: int = 500) -> list[DLQEntry]:
        """Entries newest first, filtered by task name, reason, status and age (seconds)."""
        now = time.time()
        hi = "+inf" if older_than is None else now - older_than
        lo = "-inf" if newer_than is None else now - newer_than
        out: list[DLQEntry] = []
        skipped = 0
        start = 0
        while len(out) < limit:
            ids = cast(list[str], self.redis.zrevrangebyscore(self.keys.dlq, hi, lo, start, page))
            if not ids:
                break
            start += len(ids)
            pipe = self.redis.pipeline(transaction=False)
            for i in ids:
                pipe.hgetall(self.keys.dlq_entry(i))
            for raw in pipe.execute():
                if not raw:
                    continue
                entry = DLQEntry.from_hash(raw)
                if task_name and entry.name != task_name:
                    continue
                if reason and entry.reason != reason:
                    continue
                if status and entry.status != status:
                    continue
                if skipped < offset:
                    skipped += 1
                    continue
                out.append(entry)
                if len(out) >= limit:
                    break
        return out

    def view(self, entry: DLQEntry) -> dict[str, Any]:
        """An entry as shown to people and APIs (secrets masked; see DLQEntry.public_dict)."""
        return entry.public_dict(self.redactor)

    # -- manual operations ---------------------------------------------------------------------
    def park(self, entry_id: str, note: str | None = None) -> bool:
        """Hold an entry for manual review: it is never requeued automatically."""
        key = self.keys.dlq_entry(entry_id)
        if not self.redis.exists(key):
            return False
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(self.keys.dlq_ready, entry_id)
        pipe.zrem(self.keys.dlq_claims, entry_id)
        pipe.hset(key, mapping={"status": "parked", **({"note": note} if note else {})})
        pipe.hdel(key, "claim_token")
        pipe.hincrby(self.keys.dlq_stats, "parked", 1)
        pipe.execute()
        return True

    def discard(self, entry_id: str, stat: str = "discarded") -> bool:
        """Remove an entry for good."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(self.keys.dlq, entry_id)
        pipe.zrem(self.keys.dlq_ready, entry_id)
        pipe.zrem(self.keys.dlq_claims, entry_id)
        pipe.delete(self.keys.dlq_entry(entry_id))
        removed = pipe.execute()
        if removed[0] or removed[3]:
            self.redis.hincrby(self.keys.dlq_stats, stat, 1)
            return True
        return False

    def discard_older_than(self, seconds: float, stat: str = "discarded") -> int:
        """Remove every entry whose last failure is older than ``seconds``; returns the count."""
        cutoff = time.time() - seconds
        removed = 0
        while True:
            ids = cast(list[str], self.redis.zrangebyscore(self.keys.dlq, "-inf", cutoff, 0, 500))
            if not ids:
                break
            for entry_id in ids:
                removed += int(self.discard(entry_id, stat))
        return removed

    def expire(self) -> int:
        """Time-based expiry (``WARDEN_DLQ_MAX_AGE``); expiries are counted in the stats."""
        return self.discard_older_than(self.settings.dlq_max_age, stat="expired")


    # -- processing (see :mod:`celery_warden.dlq.processor`) ---------------------------------
    def process(self, max_items: int = 100, requeue: bool = True,
                discard_older_than: float | None = None) -> dict[str, int]:
        """The spec's strategies for up to ``max_items`` ready entries: requeue with backoff
        (``requeue=True``), park for manual review (``False``), discard old ones first."""
        return self.processor.process(max_items, requeue, discard_older_than)

    def requeue(self, entry_id: str, force: bool = False) -> str | None:
        """Requeue one entry now (parked ones too when ``force``); returns the new task id."""
        return self.processor.requeue(entry_id, force)

    def claim(self, max_items: int) -> tuple[str, list[str]]:
        """Atomically claim up to ``max_items`` ready entries; returns (token, ids)."""
        return self.processor.claim(max_items)


__all__ = ["DeadLetterQueue"]
