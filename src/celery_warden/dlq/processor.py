"""DLQ processing: claim ready entries, requeue them with backoff or park them for review.

Guarantees (pinned by ``tests/integration/test_dlq_concurrency.py``):

* An entry leaves the DLQ only after its re-publish succeeded (the publish happens between a
  claim and :meth:`DLQProcessor._finish`).
* Two processors never requeue the same entry: claiming pops ids from ``P:dlq:ready`` inside one
  Lua script (``lua/dlq_claim.lua``), and finishing checks the claim token
  (``lua/dlq_finish.lua``), so a processor whose lease expired cannot finish an entry somebody
  else re-claimed.
* A requeued task gets the deterministic id ``<entry id>-r<n>``; in the one window where a
  processor dies after publishing but before finishing, the lease expires and the entry can be
  published again *with the same task id* (at-least-once), which idempotent tasks absorb.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any, Protocol

import redis

from celery_warden import headers as h
from celery_warden import scripts
from celery_warden.dlq.entry import DLQEntry
from celery_warden.keys import Keys
from celery_warden.priority import clamp, to_broker
from celery_warden.settings import WardenSettings
from celery_warden.tasks.backoff import Backoff

logger = logging.getLogger("celery_warden.dlq")

#: Requeue delay: the same backoff as retries, starting at 1 s, capped at 5 min.
REQUEUE_BACKOFF = Backoff(base=1.0, factor=2.0, cap=300.0, jitter="full")
#: Seconds before an entry whose re-publish failed is ready again.
RELEASE_DELAY = 5.0


class EntryStore(Protocol):
    """What the processor needs of the DLQ store (``DeadLetterQueue`` composes a processor)."""

    settings: WardenSettings
    keys: Keys
    redis: redis.Redis

    @property
    def app(self) -> Any: ...

    def get(self, entry_id: str) -> DLQEntry | None: ...

    def discard_older_than(self, seconds: float, stat: str = "discarded") -> int: ...


class DLQProcessor:
    """Claims and requeues entries of one DLQ store."""

    def __init__(self, dlq: EntryStore) -> None:
        self.dlq = dlq
        self.settings = dlq.settings
        self.keys = dlq.keys
        self.redis = dlq.redis

    def requeue(self, entry_id: str, force: bool = False) -> str | None:
        """Requeue one entry now (parked ones too when ``force``); returns the new task id."""
        token = secrets.token_hex(8)
        k = self.keys
        won = scripts.script(self.redis, "dlq_claim_one")(
            keys=[k.dlq_entry(entry_id), k.dlq_ready, k.dlq_claims],
            args=[entry_id, token, repr(time.time() + self.settings.dlq_claim_lease),
                  "1" if force else "0"],
        )
        entry = self.dlq.get(entry_id) if won else None
        previous = won.decode() if isinstance(won, bytes) else str(won)
        if entry is None or not entry.replayable:
            if entry is not None:
                self._release(entry_id, token, previous)
            return None
        return self._publish_and_finish(entry, token, delay=0.0, previous=previous)

    def claim(self, max_items: int) -> tuple[str, list[str]]:
        """Atomically claim up to ``max_items`` ready entries; returns (token, ids)."""
        token = secrets.token_hex(8)
        ids = scripts.script(self.redis, "dlq_claim")(
            keys=[self.keys.dlq_ready, self.keys.dlq_claims],
            args=[repr(time.time()), repr(self.settings.dlq_claim_lease), max_items,
                  self.keys.dlq_entry_prefix, token],
        )
        return token, [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    def process(self, max_items: int = 100, requeue: bool = True,
                discard_older_than: float | None = None) -> dict[str, int]:
        """Apply the spec's strategies to up to ``max_items`` ready entries.

        ``requeue=True``: re-publish with backoff (entries past ``WARDEN_DLQ_MAX_REQUEUES`` or
        not replayable are parked instead). ``requeue=False``: park them for manual review.
        ``discard_older_than``: first remove entries older than that many seconds.
        """
        counts = {"requeued": 0, "parked": 0, "discarded": 0, "failed": 0, "claimed": 0}
        if discard_older_than is not None:
            counts["discarded"] = self.dlq.discard_older_than(discard_older_than)
        token, ids = self.claim(max_items)
        counts["claimed"] = len(ids)
        for entry_id in ids:
            entry = self.dlq.get(entry_id)
            if entry is None:
                continue
            if not requeue or not entry.replayable or (
                entry.requeues >= self.settings.dlq_max_requeues
            ):
                if self._finish(entry_id, token, "parked", "parked", {}):
                    counts["parked"] += 1
                continue
            delay = REQUEUE_BACKOFF.delay(entry.requeues)
            if self._publish_and_finish(entry, token, delay) is None:
                counts["failed"] += 1
            else:
                counts["requeued"] += 1
        return counts

    def _publish_and_finish(self, entry: DLQEntry, token: str, delay: float,
                            previous: str = "pending") -> str | None:
        new_id = f"{entry.id}-r{entry.requeues + 1}"
        headers = h.replayable(entry.headers)
        headers[h.DLQ_ENTRY] = entry.id
        headers[h.REQUEUES] = entry.requeues + 1
        broker_priority = None
        if entry.priority is not None:
            headers[h.PRIORITY] = entry.priority
            # The publishing app may not run Warden's before_task_publish normalisation (the
            # CLI, the API): convert to the broker's scale here (Redis: 10 - priority).
            broker_priority = to_broker(clamp(entry.priority), self.settings.broker_is_redis)
        try:
            self.dlq.app.send_task(
                entry.name or "", args=entry.args, kwargs=entry.kwargs, task_id=new_id,
                queue=entry.queue or None, priority=broker_priority, headers=headers,
                countdown=delay or None,
            )
        except Exception:
            logger.exception("warden: requeue of DLQ entry %s failed; it stays in the DLQ",
                             entry.id)
            self._release(entry.id, token, previous)
            return None
        extra = {
            "requeues": str(entry.requeues + 1),
            "requeued_task_ids": json.dumps([*entry.requeued_task_ids, new_id]),
            "requeued_at": repr(time.time()),
        }
        if not self._finish(entry.id, token, "requeued", "requeued", extra):
            logger.warning("warden: DLQ entry %s was re-claimed before requeue finished "
                           "(lease %.0fs expired); task %s may run twice",
                           entry.id, self.settings.dlq_claim_lease, new_id)
        return new_id

    def _finish(self, entry_id: str, token: str, status: str, stat: str,
                extra: dict[str, str]) -> bool:
        k = self.keys
        done = scripts.script(self.redis, "dlq_finish")(
            keys=[k.dlq_entry(entry_id), k.dlq, k.dlq_claims, k.dlq_stats],
            args=[entry_id, token, status, stat, json.dumps(extra) if extra else "{}"],
        )
        return bool(done)

    def _release(self, entry_id: str, token: str, previous: str = "pending") -> None:
        """Give a claimed entry back (publish failed): ready again after a short delay, or
        parked again if it was parked (a failed manual requeue must not make it automatic)."""
        key = self.keys.dlq_entry(entry_id)
        if self.redis.hget(key, "claim_token") != token:
            return
        parked = previous == "parked"
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(self.keys.dlq_claims, entry_id)
        pipe.hset(key, "status", "parked" if parked else "pending")
        pipe.hdel(key, "claim_token")
        if not parked:
            pipe.zadd(self.keys.dlq_ready, {entry_id: time.time() + RELEASE_DELAY})
        pipe.execute()


__all__ = ["RELEASE_DELAY", "REQUEUE_BACKOFF", "DLQProcessor", "EntryStore"]
