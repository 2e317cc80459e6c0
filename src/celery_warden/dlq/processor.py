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

An id whose entry is gone is never claimed: the claim scripts remove it from every index
(counted as ``vanished``) without writing under its key, and finishing or releasing an entry
deleted meanwhile writes nothing either. An entry that cannot be read (marked ``broken``) is
parked and counted as ``malformed``, so it is reported once and never claimed again; the other
entries of the same batch are processed as usual.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

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

    def forget(self, ids: Sequence[str]) -> int: ...

    def discard_older_than(self, seconds: float, stat: str = "discarded") -> int: ...


class Claim(NamedTuple):
    """What one claim call got: the entries it holds, and what it set aside on the way."""

    token: str
    ids: list[str]
    #: Ids whose entry key was gone, removed from every index.
    vanished: int
    #: Ids whose key holds no hash, taken out of the ready and claim sets.
    malformed: list[str]


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
            keys=[k.dlq_entry(entry_id), k.dlq_ready, k.dlq_claims, k.dlq, k.dlq_stats],
            args=[entry_id, token, repr(time.time() + self.settings.dlq_claim_lease),
                  "1" if force else "0"],
        )
        if not won:
            return None
        previous = won.decode() if isinstance(won, bytes) else str(won)
        entry = self.dlq.get(entry_id)
        if entry is None or not entry.replayable:
            # Gone meanwhile (the release cleans its ids), broken or not replayable.
            self._release(entry_id, token, previous)
            return None
        return self._publish_and_finish(entry, token, delay=0.0, previous=previous)

    def claim(self, max_items: int) -> tuple[str, list[str]]:
        """Atomically claim up to ``max_items`` ready entries; returns (token, ids)."""
        claim = self.claim_batch(max_items)
        return claim.token, claim.ids

    def claim_batch(self, max_items: int) -> Claim:
        """:meth:`claim`, also saying which ids it removed or set aside (``lua/dlq_claim.lua``)."""
        token = secrets.token_hex(8)
        k = self.keys
        ids, vanished, malformed = scripts.script(self.redis, "dlq_claim")(
            keys=[k.dlq_ready, k.dlq_claims, k.dlq, k.dlq_stats],
            args=[repr(time.time()), repr(self.settings.dlq_claim_lease), max_items,
                  k.dlq_entry_prefix, token],
        )
        return Claim(token, [_text(i) for i in ids], int(vanished), [_text(i) for i in malformed])

    def process(self, max_items: int = 100, requeue: bool = True,
                discard_older_than: float | None = None) -> dict[str, int]:
        """Apply the spec's strategies to up to ``max_items`` ready entries.

        ``requeue=True``: re-publish with backoff (entries past ``WARDEN_DLQ_MAX_REQUEUES`` or
        not replayable are parked instead). ``requeue=False``: park them for manual review.
        ``discard_older_than``: first remove entries older than that many seconds.
        """
        counts = {"requeued": 0, "parked": 0, "discarded": 0, "failed": 0, "claimed": 0,
                  "vanished": 0, "malformed": 0}
        if discard_older_than is not None:
            counts["discarded"] = self.dlq.discard_older_than(discard_older_than)
        claim = self.claim_batch(max_items)
        counts["claimed"] = len(claim.ids)
        counts["vanished"] = claim.vanished
        for entry_id in claim.malformed:  # already out of the ready set; get() reports it
            self.dlq.get(entry_id)
            counts["malformed"] += 1
        for entry_id in claim.ids:
            outcome = self._process_one(entry_id, claim.token, requeue)
            if outcome:
                counts[outcome] += 1
        return counts

    def _process_one(self, entry_id: str, token: str, requeue: bool) -> str | None:
        """Requeue or park one claimed entry; returns the count it adds to (or None)."""
        entry = self.dlq.get(entry_id)
        if entry is None:  # deleted since the claim: its ids must not stay claimed
            return "vanished" if self.dlq.forget([entry_id]) else None
        if entry.broken:  # parked, so never claimed (nor reported) again
            parked = self._finish(entry_id, token, "parked", "malformed", {})
            return "malformed" if parked else None
        if not requeue or not entry.replayable or (
            entry.requeues >= self.settings.dlq_max_requeues
        ):
            return "parked" if self._finish(entry_id, token, "parked", "parked", {}) else None
        delay = REQUEUE_BACKOFF.delay(entry.requeues)
        return "failed" if self._publish_and_finish(entry, token, delay) is None else "requeued"

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
            logger.warning("warden: DLQ entry %s was re-claimed, parked or removed before its "
                           "requeue finished (lease %.0fs); task %s may run twice",
                           entry.id, self.settings.dlq_claim_lease, new_id)
        return new_id

    def _finish(self, entry_id: str, token: str, status: str, stat: str,
                extra: dict[str, str]) -> bool:
        k = self.keys
        done = scripts.script(self.redis, "dlq_finish")(
            keys=[k.dlq_entry(entry_id), k.dlq, k.dlq_claims, k.dlq_stats, k.dlq_ready],
            args=[entry_id, token, status, stat, json.dumps(extra) if extra else "{}"],
        )
        return bool(done)

    def _release(self, entry_id: str, token: str, previous: str = "pending") -> None:
        """Give a claimed entry back (publish failed): ready again after a short delay, or
        parked again if it was parked (a failed manual requeue must not make it automatic).
        One script (``lua/dlq_release.lua``): an entry deleted meanwhile is not written back."""
        k = self.keys
        scripts.script(self.redis, "dlq_release")(
            keys=[k.dlq_entry(entry_id), k.dlq_ready, k.dlq_claims, k.dlq, k.dlq_stats],
            args=[entry_id, token, "1" if previous == "parked" else "0",
                  repr(time.time() + RELEASE_DELAY)],
        )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["RELEASE_DELAY", "REQUEUE_BACKOFF", "Claim", "DLQProcessor", "EntryStore"]
