"""Warden's own Prometheus values (the ``warden_*`` families), read from the store.

Each function is one or a few pipelined reads, so a ``/metrics`` scrape costs the same whether
one or ten ``warden serve`` replicas answer it, and nothing is kept in the serving process:

* **DLQ size by reason** is counted from the entries present now (their ``reason`` field, read
  in pages of :data:`DLQ_PAGE` with one pipeline each), not from counters, so it goes down when
  entries are requeued, parked away or discarded — it is a gauge.
* **Breaker state** is one-hot over :data:`BREAKER_STATES` (``1`` for the effective state, the
  one operators see: an open breaker whose recovery time passed shows ``half_open``); **trips**
  is the breaker's own ``trips`` counter, which ``lua/breaker.lua`` only ever increments (an
  operator's reset does not zero it), so it is a true Prometheus counter.
* **Recorder drops** is the fleet-wide ``dropped`` counter every flusher adds to.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import cast

import redis

from celery_warden.fleet.breaker_state import read_breakers
from celery_warden.keys import Keys

#: Entries whose reason is read per pipeline when counting the DLQ by reason.
DLQ_PAGE = 1000
#: Every state a breaker can be in (``warden_breaker_state`` has one series per state).
BREAKER_STATES = ("closed", "open", "half_open", "forced_open", "forced_closed")
#: Label value for an entry that has no readable reason (malformed or vanished meanwhile).
UNKNOWN_REASON = "unknown"


@dataclass(frozen=True, slots=True)
class BreakerValue:
    """One breaker as the exporter shows it."""

    name: str
    state: str
    trips: int


def dlq_by_reason(client: redis.Redis, keys: Keys, page: int = DLQ_PAGE) -> dict[str, int]:
    """Entries in the DLQ now, per failure reason (``max_retries``, ``time_limit``, ...).

    Ids whose entry hash is gone (a sweep has not forgotten them yet) are not counted, so the
    sum can be a little below ``DeadLetterQueue.size()`` until the sweep runs.
    """
    counts: Counter[str] = Counter()
    start = 0
    while True:
        ids = cast(list[str], client.zrange(keys.dlq, start, start + page - 1))
        if not ids:
            break
        start += len(ids)
        pipe = client.pipeline(transaction=False)
        for entry_id in ids:
            pipe.hget(keys.dlq_entry(entry_id), "reason")
        for reason in pipe.execute(raise_on_error=False):
            if reason is None:
                continue
            counts[reason if isinstance(reason, str) and reason else UNKNOWN_REASON] += 1
        if len(ids) < page:
            break
    return dict(counts)


def breaker_values(client: redis.Redis, keys: Keys) -> list[BreakerValue]:
    """Every breaker's effective state and cumulative trips."""
    return [BreakerValue(b["name"], str(b["effective_state"]), int(b["trips"]))
            for b in read_breakers(client, keys)]


def recorder_dropped(client: redis.Redis, keys: Keys) -> int:
    """Records the fleet's recorders dropped since the store was created (never decreases)."""
    raw = client.hget(keys.stats("recorder"), "dropped")
    try:
        return int(cast(str, raw)) if raw is not None else 0
    except ValueError:
        return 0


__all__ = ["BREAKER_STATES", "DLQ_PAGE", "UNKNOWN_REASON", "BreakerValue", "breaker_values",
           "dlq_by_reason", "recorder_dropped"]
