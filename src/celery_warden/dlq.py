"""The dead letter queue: failed tasks kept with everything needed to understand and replay them.

RQ's ``FailedJobRegistry`` is the model: a sorted set scored by time, one hash per entry with the
original message and the failure, ``requeue`` back to the origin queue, expiry by age.

Life of an entry::

    add ──▶ pending ──claim──▶ claimed ──publish ok──▶ requeued (leaves the DLQ)
               ▲   │              │  └─ lease expires ──▶ pending (another processor may take it)
               │   └──park──▶ parked (manual review; never requeued automatically)
               └──── the requeued task fails again: same entry, requeues + 1

Guarantees:

* An entry leaves the DLQ only after its re-publish succeeded (the publish happens between a
  claim and :meth:`DeadLetterQueue._finish`).
* Two processors never requeue the same entry: claiming pops ids from ``P:dlq:ready`` inside one
  Lua script, and finishing checks the claim token, so a processor whose lease expired cannot
  finish an entry somebody else re-claimed.
* A requeued task gets the deterministic id ``<entry id>-r<n>``; in the one window where a
  processor dies after publishing but before finishing, the lease expires and the entry can be
  published again *with the same task id* (at-least-once), which idempotent tasks absorb.
* Entries are written synchronously at the moment of failure (before the message is
  acknowledged); if Redis is unreachable then, the entry is logged at CRITICAL with its full
  content so it can be recovered from logs.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import redis
from celery import Celery

from celery_warden.backoff import Backoff
from celery_warden.keys import Keys
from celery_warden.redaction import Redactor
from celery_warden.settings import WardenSettings
from celery_warden.store import redis_client

logger = logging.getLogger("celery_warden.dlq")

#: Why an entry is in the DLQ.
REASONS = (
    "max_retries",  # retries exhausted
    "exception",  # a non-retryable exception
    "soft_time_limit",  # SoftTimeLimitExceeded not handled by the task
    "time_limit",  # hard time limit: the pool child was killed
    "worker_lost",  # the pool child died and the task may not be retried
    "poison_pill",  # delivered more than WARDEN_MAX_DELIVERIES times
    "unknown_task",  # no task registered under the message's name
    "undecodable",  # the body could not be decoded (or content type not accepted)
    "invalid_message",  # a message that is not a valid task message
    "broker_dead_letter",  # dead-lettered by RabbitMQ (rejected or expired by TTL)
)
STATUSES = ("pending", "claimed", "parked", "requeued")
#: Header linking a requeued task back to its DLQ entry, and its requeue count.
ENTRY_HEADER = "warden_dlq_entry"
REQUEUES_HEADER = "warden_requeues"
#: Headers that belong to one delivery and are not carried into a requeue.
_DELIVERY_HEADERS = frozenset({
    "warden_sent", "warden_received", "redelivered", "warden_defers", "warden_priority",
    ENTRY_HEADER, REQUEUES_HEADER,
})
#: Requeue delay: the same backoff as retries, starting at 1 s, capped at 5 min.
REQUEUE_BACKOFF = Backoff(base=1.0, factor=2.0, cap=300.0, jitter="full")
#: Longest traceback kept per entry.
MAX_TRACEBACK = 16_000

_CLAIM = """
-- KEYS: ready, claims ; ARGV: now, lease, n, entry prefix, token
local now = tonumber(ARGV[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[2], id)
  if redis.call('HGET', ARGV[4] .. id, 'status') == 'claimed' then
    redis.call('HSET', ARGV[4] .. id, 'status', 'pending')
    redis.call('ZADD', KEYS[1], now, id)
  end
end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), id)
  redis.call('HSET', ARGV[4] .. id, 'status', 'claimed', 'claim_token', ARGV[5])
end
return ids
"""

_CLAIM_ONE = """
-- KEYS: entry, ready, claims ; ARGV: id, token, deadline, allow parked (1/0)
-- Returns the status the entry had (so a failed requeue can restore it), or 0.
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'pending' and not (status == 'parked' and ARGV[4] == '1') then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[1], 'status', 'claimed', 'claim_token', ARGV[2])
return status
"""

_FINISH = """
-- KEYS: entry, dlq, claims, stats ; ARGV: id, token, new status, stat field, extra json
if redis.call('HGET', KEYS[1], 'claim_token') ~= ARGV[2] then return 0 end
if redis.call('HGET', KEYS[1], 'status') ~= 'claimed' then return 0 end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[1], 'claim_token')
redis.call('HSET', KEYS[1], 'status', ARGV[3])
local extra = cjson.decode(ARGV[5])
for k, v in pairs(extra) do redis.call('HSET', KEYS[1], k, v) end
if ARGV[3] == 'requeued' then redis.call('ZREM', KEYS[2], ARGV[1]) end
redis.call('HINCRBY', KEYS[4], ARGV[4], 1)
return 1
"""


@dataclass
class DLQEntry:
    """One dead-lettered task: the message to replay and why it failed."""

    id: str
    task_id: str
    reason: str
    name: str | None = None
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    queue: str | None = None
    exchange: str | None = None
    routing_key: str | None = None
    priority: int | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    exc_type: str | None = None
    exc_message: str | None = None
    traceback: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    worker: str | None = None
    first_failed: float = 0.0
    last_failed: float = 0.0
    failures: int = 1
    requeues: int = 0
    status: str = "pending"
    requeued_task_ids: list[str] = field(default_factory=list)
    raw: dict[str, Any] | None = None
    note: str | None = None

    _JSON = ("args", "kwargs", "headers", "history", "requeued_task_ids", "raw")

    def to_hash(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in asdict(self).items():
            if value is None:
                continue
            out[key] = json.dumps(value) if key in self._JSON else str(value)
        return out

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> DLQEntry:
        data: dict[str, Any] = {}
        for key in cls.__dataclass_fields__:
            if key not in raw:
                continue
            value: Any = raw[key]
            if key in cls._JSON:
                value = json.loads(value)
            elif key in ("failures", "requeues", "priority"):
                value = int(value)
            elif key in ("first_failed", "last_failed"):
                value = float(value)
            data[key] = value
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        """Every field as stored (args and kwargs unmasked: this is what a requeue sends)."""
        return asdict(self)

    def public_dict(self, redactor: Redactor) -> dict[str, Any]:
        """Every field for people and APIs: secrets in args, kwargs, headers and the raw
        message masked. The stored entry is not changed, so a requeue replays the original."""
        data = asdict(self)
        for key in ("args", "kwargs", "headers", "raw"):
            if data[key] is not None:
                data[key] = redactor.redact(data[key])
        return data

    @property
    def replayable(self) -> bool:
        """Whether the entry can be re-published by name (undecodable bodies cannot)."""
        return bool(self.name) and self.args is not None and self.kwargs is not None


def replay_headers(headers: dict[str, Any] | None) -> dict[str, Any]:
    """Custom headers to carry into a requeue (options, history), without delivery state."""
    return {k: v for k, v in (headers or {}).items()
            if k not in _DELIVERY_HEADERS and k.startswith("warden_")}


class DeadLetterQueue:
    """DLQ store and processing. Thread-safe; one per process is plenty."""

    def __init__(self, settings: WardenSettings, app: Celery | None = None,
                 client: redis.Redis | None = None) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.redis = client or redis_client(settings.redis_url)
        self._app = app
        self._claim = self.redis.register_script(_CLAIM)
        self._finish_script = self.redis.register_script(_FINISH)
        self._claim_one = self.redis.register_script(_CLAIM_ONE)
        self.redactor = Redactor(settings.redact_keys)

    @property
    def app(self) -> Celery:
        if self._app is None:
            from celery_warden.config import celery_config

            self._app = Celery("celery_warden.dlq", set_as_current=False)
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

    def requeue(self, entry_id: str, force: bool = False) -> str | None:
        """Requeue one entry now (parked ones too when ``force``); returns the new task id."""
        token = secrets.token_hex(8)
        k = self.keys
        won = self._claim_one(
            keys=[k.dlq_entry(entry_id), k.dlq_ready, k.dlq_claims],
            args=[entry_id, token, repr(time.time() + self.settings.dlq_claim_lease),
                  "1" if force else "0"],
        )
        entry = self.get(entry_id) if won else None
        previous = won.decode() if isinstance(won, bytes) else str(won)
        if entry is None or not entry.replayable:
            if entry is not None:
                self._release(entry_id, token, previous)
            return None
        return self._publish_and_finish(entry, token, delay=0.0, previous=previous)

    # -- processing -----------------------------------------------------------------------------
    def claim(self, max_items: int) -> tuple[str, list[str]]:
        """Atomically claim up to ``max_items`` ready entries; returns (token, ids)."""
        token = secrets.token_hex(8)
        ids = self._claim(
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
            counts["discarded"] = self.discard_older_than(discard_older_than)
        token, ids = self.claim(max_items)
        counts["claimed"] = len(ids)
        for entry_id in ids:
            entry = self.get(entry_id)
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
        headers = replay_headers(entry.headers)
        headers[ENTRY_HEADER] = entry.id
        headers[REQUEUES_HEADER] = entry.requeues + 1
        from celery_warden.priority import HEADER as PRIORITY_HEADER
        from celery_warden.priority import clamp, to_broker

        broker_priority = None
        if entry.priority is not None:
            headers[PRIORITY_HEADER] = entry.priority
            # The publishing app may not run Warden's before_task_publish normalisation (the
            # CLI, the API): convert to the broker's scale here (Redis: 10 - priority).
            broker_priority = to_broker(clamp(entry.priority), self.settings.broker_is_redis)
        try:
            self.app.send_task(
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
        done = self._finish_script(
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
            pipe.zadd(self.keys.dlq_ready, {entry_id: time.time() + 5.0})
        pipe.execute()


__all__ = ["ENTRY_HEADER", "REASONS", "REQUEUES_HEADER", "DLQEntry", "DeadLetterQueue",
           "replay_headers"]
