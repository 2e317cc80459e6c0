"""Tasks lost between the Redis broker and a worker: found, filed in the DLQ, counted.

Why: kombu's Redis transport takes a message off its queue with ``BRPOP`` and only afterwards
(``QoS.append``: ``ZADD unacked_index`` + ``HSET unacked``) records it as unacknowledged. A worker
main process SIGKILLed between the two held the only copy: no visibility timeout brings it back,
no signal fires, its record stays SENT (celery/celery#7950 shows the commands, #4354 the loss at
a warm shutdown; the chaos suite lost 1 task in 10,000). Closing the window means an atomic pop
into a per-consumer list, i.e. replacing kombu's consumer (one ``BRPOP`` serves every queue and
priority lane, which no atomic move does; a private transport subclass breaks with each kombu
release), so Warden keeps "never *silently* lost" by detection.

Lost in transit: ``lost_in_transit_after`` seconds after its (re-)publish or ETA, a record still
SENT or RETRY whose message is, in one atomic read of the broker (``lua/transit_scan.lua``),
neither in its queue's lists (every priority lane) nor in kombu's unacked hash (where reserved
and ETA tasks a worker holds sit until acknowledged) — at two consecutive looks, and with no
final state in the result backend (that would mean it ran and only its record was lost). Filed
with reason ``lost_in_transit``; the record becomes FAILURE (``LostInTransit``), counted. Only the
broker held the body: the entry is parked and says it cannot be requeued.

Cost: candidates from the state indexes (``P:ix:s:SENT``/``RETRY``, at most :data:`CANDIDATES`
each); the broker is read only when there are some, at most :data:`SCAN_BUDGET` messages a look
(a deeper queue leaves its candidates undecided until it drains). Runs in every worker main on a
Redis broker; only the holder of ``P:transit:lease`` looks. Assumes a routing key names its queue
(Celery's default); a queue purged through Warden's API (``P:purged:<queue>``) has its tasks
closed as REVOKED, a ``celery purge`` would have them filed. More in docs/error-handling.md.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, cast

import redis
from celery import Celery, states

from celery_warden import scripts
from celery_warden.dlq.entry import DLQEntry
from celery_warden.dlq.store import DeadLetterQueue
from celery_warden.keys import Keys
from celery_warden.priority import redis_lanes
from celery_warden.record.order import MAX_DEFERS, RANK_FINAL
from celery_warden.record.recorder import Recorder
from celery_warden.services import redis_client
from celery_warden.settings import WardenSettings
from celery_warden.timefmt import iso

logger = logging.getLogger("celery_warden.dlq")

REASON = "lost_in_transit"
EXC_TYPE = "LostInTransit"
#: Record states whose message may be in transit (SENT: published; RETRY: re-published).
STATES = ("SENT", "RETRY")
#: Candidate ids examined per look and state (the oldest first).
CANDIDATES = 500
#: Messages (queue lists and the unacked hash together) one look reads at most.
SCAN_BUDGET = 20_000
_FIELDS = ("state", "seq", "name", "queue", "sent", "resent", "eta", "priority", "dlq_entry")
_SCAN = scripts.source("transit_scan")


def look_every(after: float) -> float:
    """Seconds between two looks for a given ``lost_in_transit_after``: a quarter of it,
    between 1 s and 60 s (a loss is filed within ``after`` plus two looks)."""
    return max(1.0, min(60.0, after / 4))


@dataclass(frozen=True, slots=True)
class Candidate:
    """A record still SENT or RETRY long after its (re-)publish."""

    task_id: str
    state: str
    seq: int
    name: str
    queue: str
    sent: float
    waiting_since: float
    priority: int | None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def candidates(client: redis.Redis, keys: Keys, cutoff: float,
               limit: int = CANDIDATES) -> list[Candidate]:
    """Records in :data:`STATES` not updated since ``cutoff`` whose publish (re-publish, ETA)
    is older than ``cutoff`` too, and that no DLQ entry names."""
    ids: list[tuple[str, str]] = []
    for state in STATES:
        found = client.zrangebyscore(keys.task_state_index(state), "-inf", repr(cutoff), 0, limit)
        ids += [(str(t), state) for t in cast(list[str], found)]
    if not ids:
        return []
    pipe = client.pipeline(transaction=False)
    for task_id, _ in ids:
        pipe.hmget(keys.task(task_id), _FIELDS)
    out: list[Candidate] = []
    for (task_id, state), values in zip(ids, pipe.execute(), strict=True):
        rec = dict(zip(_FIELDS, values, strict=True))
        if rec["state"] != state or rec["dlq_entry"] or not rec["queue"] or not rec["name"]:
            continue  # moved on, already filed, or not knowable
        sent = _float(rec["sent"]) or 0.0
        since = max(sent, _float(rec["resent"]) or 0.0, _float(rec["eta"]) or 0.0)
        if not since or since > cutoff:
            continue
        priority = _float(rec["priority"])
        out.append(Candidate(task_id, state, int(_float(rec["seq"]) or 0), str(rec["name"]),
                             str(rec["queue"]), sent, since,
                             int(priority) if priority is not None else None))
    return out


def in_broker(app: Celery, found: list[Candidate],
              budget: int = SCAN_BUDGET) -> tuple[set[str], set[str]]:
    """(ids whose message is still in the broker, ids undecided) — one atomic read of every
    candidate queue's lanes and kombu's unacked hash, on the broker's own Redis."""
    queues = list(dict.fromkeys(c.queue for c in found))
    wanted = sorted({c.task_id for c in found})
    with app.connection_for_read() as conn:
        channel: Any = conn.default_channel  # kombu's Redis Channel
        prefix = getattr(channel, "global_keyprefix", "") or ""
        lanes = [redis_lanes(channel, q) for q in queues]
        client = redis.Redis(connection_pool=channel.client.connection_pool)
        reply = client.register_script(_SCAN)(
            keys=[prefix + channel.unacked_key, *(k for group in lanes for k in group)],
            args=[budget, len(queues), *(len(group) for group in lanes), *wanted])
    complete, deep, ids = reply
    if not int(complete):
        return set(), set(wanted)
    deep_queues = {queues[int(i) - 1] for i in deep}
    present = {i.decode() if isinstance(i, bytes) else str(i) for i in ids}
    return present, {c.task_id for c in found if c.queue in deep_queues}


def _ran(backend: Any, task_id: str) -> str | None:
    """A final state the result backend holds for the task, if it has one (it ran)."""
    if type(backend).__name__ == "DisabledBackend":
        return None
    try:
        status = backend.get_task_meta(task_id).get("status")
    except Exception:  # no backend answer: the broker's verdict stands
        return None
    return str(status) if status in states.READY_STATES else None


def entry_for(c: Candidate, after: float, now: float) -> DLQEntry:
    """The DLQ entry of a task lost in transit: all the record knew, no message body."""
    what = "re-published by a retry" if c.state == "RETRY" else "published"
    text = (f"{what} to queue {c.queue!r} at {iso(c.waiting_since)}; no worker received "
            f"it within {after:g} s and it is neither in that queue nor among the broker's "
            "unacknowledged messages: a worker's main process was most likely killed between "
            "taking it off the queue (BRPOP) and recording it as unacknowledged. The message "
            "body was only in the broker: Warden cannot requeue it; resubmit the task from "
            "its source.")
    return DLQEntry(id=c.task_id, task_id=c.task_id, reason=REASON, name=c.name, queue=c.queue,
                    routing_key=c.queue, priority=c.priority, exc_type=EXC_TYPE,
                    exc_message=text, first_failed=now, last_failed=now,
                    note="message body not available: cannot be requeued")


class TransitWatch:
    """Looks for tasks lost in transit under the fleet's lease; one per worker main process."""

    def __init__(self, app: Celery, settings: WardenSettings, dlq: DeadLetterQueue,
                 recorder: Recorder, client: redis.Redis | None = None) -> None:
        self.app = app
        self.settings = settings
        self.after = settings.lost_in_transit_after
        self.every = look_every(self.after)
        self.keys = Keys(settings.key_prefix)
        self.dlq = dlq
        self.recorder = recorder
        self.redis = client or redis_client(settings.redis_url)
        self.token = uuid.uuid4().hex
        self._suspects: dict[str, int] = {}  # task id -> seq, absent at the previous look
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.filed = 0  # tasks filed by this process (tests, the log)
        # Built here, in the thread that starts the watch, not first in the watch's thread.
        self._backend = app.backend

    # -- the lease ---------------------------------------------------------------------------
    def hold_lease(self) -> bool:
        held = int(scripts.script(self.redis, "alerts_lease")(
            keys=[self.keys.transit_lease], args=[self.token, int(self.every * 3000), "hold"]))
        if not held:
            self._suspects.clear()  # another process looks; start afresh if it comes back
        return held != 0

    def release(self) -> None:
        scripts.script(self.redis, "alerts_lease")(keys=[self.keys.transit_lease],
                                                   args=[self.token, 0, "release"])

    # -- one look ----------------------------------------------------------------------------
    def look(self, now: float | None = None) -> list[str]:
        """One look (the caller holds the lease); returns the task ids filed now."""
        now = time.time() if now is None else now
        found = self._unpurged(candidates(self.redis, self.keys, now - self.after), now)
        if not found:
            self._suspects.clear()
            return []
        present, undecided = in_broker(self.app, found)
        suspects: dict[str, int] = {}
        filed: list[str] = []
        for c in found:
            if c.task_id in present or c.task_id in undecided:
                continue
            if self._suspects.get(c.task_id) != c.seq:
                suspects[c.task_id] = c.seq  # absent once: confirmed (or not) at the next look
                continue
            ran = _ran(self._backend, c.task_id)
            if ran is not None:
                logger.warning("warden: task %s (%s) is still %s in the store, but the result "
                               "backend says %s: its record was lost, not the task", c.task_id,
                               c.name, c.state, ran)
                continue
            self.file(c, now)
            filed.append(c.task_id)
        self._suspects = suspects
        return filed

    def _unpurged(self, found: list[Candidate], now: float) -> list[Candidate]:
        """The candidates whose queue Warden did not purge after they were sent; the others'
        records are closed as REVOKED (purged), so they stop being candidates."""
        queues = sorted({c.queue for c in found})
        if not queues:
            return found
        stamps = self.redis.mget([self.keys.queue_purged(q) for q in queues])
        purged = {q: t for q, v in zip(queues, stamps, strict=True)
                  if (t := _float(v)) is not None}
        kept: list[Candidate] = []
        for c in found:
            at = purged.get(c.queue)
            if at is None or at < c.waiting_since:
                kept.append(c)
                continue
            retries, defers = divmod(c.seq, MAX_DEFERS + 1)
            self.recorder.task(c.task_id, static={"name": c.name}, rank=RANK_FINAL,
                               attempt={"state": "REVOKED", "finished": now,
                                        "reason": f"purged from queue {c.queue} at {iso(at)}"},
                               retries=retries, defers=defers)
        return kept

    def file(self, c: Candidate, now: float) -> DLQEntry:
        """Write the DLQ entry, then close the record and count the failure."""
        entry = self.dlq.add(entry_for(c, self.after, now))
        retries, defers = divmod(c.seq, MAX_DEFERS + 1)
        r = self.recorder
        r.task(c.task_id, static={"name": c.name, "dlq_entry": entry.id, "dlq_reason": REASON},
               attempt={"state": "FAILURE", "finished": now, "reason": "lost in transit",
                        "exc_type": EXC_TYPE, "exc_msg": entry.exc_message or ""},
               retries=retries, defers=defers, rank=RANK_FINAL)
        r.observe(c.name, now, "failure", None, None, c.queue, retried=retries > 0)
        r.total(("failed", c.name, "", c.queue, EXC_TYPE))
        r.stat(REASON)
        self.filed += 1
        logger.error("warden: task %s (%s) lost in transit to queue %r (published %s); filed "
                     "in the DLQ, not requeueable (no message body)", c.task_id, c.name,
                     c.queue, iso(c.waiting_since))
        return entry

    # -- the thread --------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="warden-transit", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        with contextlib.suppress(redis.RedisError):  # the lease lapses by itself
            self.release()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                if self.hold_lease():
                    self.look()
            except Exception:  # a store or broker that does not answer: the next look
                logger.warning("warden: looking for tasks lost in transit failed",
                               exc_info=True)


__all__ = ["CANDIDATES", "REASON", "SCAN_BUDGET", "STATES", "Candidate", "TransitWatch",
           "candidates", "entry_for", "in_broker", "look_every"]
