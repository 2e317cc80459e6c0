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

Every change that touches an entry hash runs in one Lua script that first checks the key
(``lua/dlq_*.lua``): a hash can vanish while its id is still indexed (its TTL ran out, memory
eviction, a manual ``DEL``), and a check followed by a separate write would resurrect it as a
stub. Ids without an entry are removed from every index when met (claims, listing, finishing)
and by the sweep in :meth:`DeadLetterQueue.discard_older_than`, counted as ``vanished``.
A hash that cannot be read as an entry is reported once per process, counted as
``malformed`` when processing sets it aside, and skipped; ``get`` shows it marked ``broken``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from itertools import chain
from typing import Any, cast

import redis
from celery import Celery
from redis.client import NEVER_DECODE

from celery_warden import scripts
from celery_warden.config import celery_config
from celery_warden.dlq.entry import DLQEntry, EntryPage
from celery_warden.dlq.processor import DLQProcessor
from celery_warden.keys import Keys
from celery_warden.redaction import Redactor
from celery_warden.services import redis_client
from celery_warden.settings import WardenSettings

logger = logging.getLogger("celery_warden.dlq")
#: Broken entry ids remembered per DLQ object so each is logged once (cleared when full).
REPORTED_MAX = 10_000
#: Ids per round trip when sweeping the indexes for vanished entries.
SWEEP_BATCH = 500


def _wrong_type(exc: redis.ResponseError) -> bool:
    return str(exc).startswith("WRONGTYPE")


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
        self._reported: set[str] = set()

    @property
    def app(self) -> Celery:
        if self._app is None:
            self._app = Celery("celery_warden.dlq.store", set_as_current=False)
            self._app.conf.update(celery_config(self.settings))
        return self._app

    # -- writing -----------------------------------------------------------------------------
    def add(self, entry: DLQEntry) -> DLQEntry:
        """Store an entry (or update the entry of a requeued task that failed again).

        Its failure text is masked and bounded here, whoever captured it (the message to
        replay is stored as it is)."""
        entry.mask_failure(self.redactor)
        now = time.time()
        entry.last_failed = entry.last_failed or now
        entry.first_failed = entry.first_failed or entry.last_failed
        if entry.status not in ("pending", "parked"):
            entry.status = "pending"
        if entry.status == "pending" and (
            not entry.replayable or entry.requeues >= self.settings.dlq_max_requeues
        ):
            entry.status = "parked"
        fields = entry.to_hash()
        first = fields.pop("first_failed")  # kept from the first failure (see dlq_add.lua)
        fields.pop("failures", None)
        if not entry.requeued_task_ids:  # a requeued task failing again keeps the earlier ids
            fields.pop("requeued_task_ids", None)
        k = self.keys
        # Raises redis.ResponseError (nothing written) if the key holds something else.
        scripts.script(self.redis, "dlq_add")(
            keys=[k.dlq_entry(entry.id), k.dlq, k.dlq_ready, k.dlq_claims, k.dlq_stats],
            args=[entry.id, repr(entry.last_failed), "1" if entry.status == "pending" else "0",
                  int(self.settings.dlq_max_age + 24 * 3600), entry.reason, first,
                  *chain.from_iterable(fields.items())],
        )
        return entry

    # -- reading -----------------------------------------------------------------------------
    def get(self, entry_id: str) -> DLQEntry | None:
        """The entry; ``None`` if there is none; an entry marked ``broken`` (logged once) if
        the key holds something that cannot be read as one."""
        return self._read(entry_id, self._hgetall(entry_id))

    def _hgetall(self, entry_id: str) -> dict[str, str] | redis.ResponseError:
        """The entry hash, or the error reading it. Bytes that are not UTF-8 (a hand-written
        field) are read undecoded and kept as lone surrogates, which ``from_hash`` reports."""
        key = self.keys.dlq_entry(entry_id)
        try:
            return cast(dict[str, str], self.redis.hgetall(key))
        except redis.ResponseError as exc:
            return exc
        except UnicodeDecodeError:  # redis-py dropped that connection: nothing left unread
            raw = self.redis.execute_command(  # type: ignore[no-untyped-call]
                "HGETALL", key, **{NEVER_DECODE: []})
            return {bytes(k).decode(errors="surrogateescape"):
                    bytes(v).decode(errors="surrogateescape") for k, v in raw.items()}

    def _read(self, entry_id: str, raw: dict[str, str] | redis.ResponseError) -> DLQEntry | None:
        """What one HGETALL answered, as an entry (see :meth:`get`)."""
        if isinstance(raw, redis.ResponseError):
            if not _wrong_type(raw):
                raise raw
            return self._report(DLQEntry.unreadable(entry_id, "the key holds no hash"))
        if not raw:
            return None
        entry = DLQEntry.from_hash(raw, entry_id)
        return self._report(entry) if entry.broken else entry

    def _report(self, entry: DLQEntry) -> DLQEntry:
        """Log a broken entry once per DLQ object: listings and processing meet it again."""
        if entry.id not in self._reported:
            if len(self._reported) >= REPORTED_MAX:
                self._reported.clear()
            self._reported.add(entry.id)
            logger.warning("warden: DLQ entry %s is malformed (%s); it is skipped and kept for "
                           "review (warden dlq show / discard)", entry.id, entry.broken)
        return entry

    def size(self) -> int:
        """Entries in the DLQ (pending, claimed and parked; malformed ones too, which listings
        skip and count). Ids whose entry vanished count until they are forgotten: when a claim
        or a listing meets them, or by the sweep in :meth:`discard_older_than`."""
        return int(self.redis.zcard(self.keys.dlq))

    def stats(self) -> dict[str, Any]:
        raw = cast(dict[str, str], self.redis.hgetall(self.keys.dlq_stats))
        counts = {k: int(v) for k, v in raw.items()}
        return {"size": self.size(), "ready": int(self.redis.zcard(self.keys.dlq_ready)),
                "claimed": int(self.redis.zcard(self.keys.dlq_claims)), **counts}

    def list_entries(self, limit: int = 50, offset: int = 0, task_name: str | None = None,
             reason: str | None = None, status: str | None = None,
             older_than: float | None = None, newer_than: float | None = None,
             page: int = 500) -> EntryPage:
        """Entries newest first, filtered by task name, reason, status and age (seconds).
        Malformed entries are skipped and ids without an entry forgotten; the result counts
        both (``skipped``, ``vanished``)."""
        now = time.time()
        hi = "+inf" if older_than is None else now - older_than
        lo = "-inf" if newer_than is None else now - newer_than
        out = EntryPage()
        gone: list[str] = []
        passed = 0  # entries matched but before ``offset``
        start = 0
        while len(out) < limit:
            ids = cast(list[str], self.redis.zrevrangebyscore(self.keys.dlq, hi, lo, start, page))
            if not ids:
                break
            start += len(ids)
            pipe = self.redis.pipeline(transaction=False)
            for i in ids:
                pipe.hgetall(self.keys.dlq_entry(i))
            try:
                found = pipe.execute(raise_on_error=False)
            except UnicodeDecodeError:  # a field is not UTF-8: read this page one by one
                found = [self._hgetall(i) for i in ids]
            for entry_id, raw in zip(ids, found, strict=True):
                entry = self._read(entry_id, raw)
                if entry is None:
                    gone.append(entry_id)
                    continue
                if entry.broken:
                    out.skipped += 1
                    continue
                if task_name and entry.name != task_name:
                    continue
                if reason and entry.reason != reason:
                    continue
                if status and entry.status != status:
                    continue
                if passed < offset:
                    passed += 1
                    continue
                out.append(entry)
                if len(out) >= limit:
                    break
        out.vanished = self.forget(gone)  # after paging: forgetting shifts the offsets
        return out

    def view(self, entry: DLQEntry) -> dict[str, Any]:
        """An entry as shown to people and APIs (secrets masked; see DLQEntry.public_dict)."""
        return entry.public_dict(self.redactor)

    # -- manual operations ---------------------------------------------------------------------
    def park(self, entry_id: str, note: str | None = None) -> bool:
        """Hold an entry for manual review: it is never requeued automatically. False when
        there is no entry in the DLQ under that id (gone, or already requeued)."""
        k = self.keys
        return bool(scripts.script(self.redis, "dlq_park")(
            keys=[k.dlq_entry(entry_id), k.dlq, k.dlq_ready, k.dlq_claims, k.dlq_stats],
            args=[entry_id, note or ""],
        ))

    def discard(self, entry_id: str, stat: str = "discarded") -> bool:
        """Remove an entry for good (counted under ``stat``). False when there was no entry;
        ids left without one are still removed (counted as ``vanished``)."""
        k = self.keys
        return bool(scripts.script(self.redis, "dlq_discard")(
            keys=[k.dlq_entry(entry_id), k.dlq, k.dlq_ready, k.dlq_claims, k.dlq_stats],
            args=[entry_id, stat],
        ))

    def forget(self, ids: Sequence[str]) -> int:
        """Remove from every index those ``ids`` whose entry key is gone (re-checked inside
        the script, so an entry added meanwhile stays); returns how many, counted as
        ``vanished``."""
        if not ids:
            return 0
        k = self.keys
        return int(scripts.script(self.redis, "dlq_forget")(
            keys=[k.dlq, k.dlq_ready, k.dlq_claims, k.dlq_stats],
            args=[k.dlq_entry_prefix, *ids],
        ))

    def forget_vanished(self) -> int:
        """Sweep all three indexes for ids whose entry is gone, whatever their age: a parked
        one is in no ready set, so no claim would ever meet it. Returns how many."""
        forgotten = 0
        for index in (self.keys.dlq, self.keys.dlq_ready, self.keys.dlq_claims):
            batch: list[str] = []
            for entry_id, _score in self.redis.zscan_iter(index, count=SWEEP_BATCH):
                batch.append(entry_id)
                if len(batch) >= SWEEP_BATCH:
                    forgotten += self.forget(batch)
                    batch = []
            forgotten += self.forget(batch)
        return forgotten

    def discard_older_than(self, seconds: float, stat: str = "discarded") -> int:
        """Remove every entry whose last failure is older than ``seconds``; returns the count.
        Ids whose entry vanished are forgotten first, whatever their age (see
        :meth:`forget_vanished`), and not counted here."""
        self.forget_vanished()
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
