"""What the live stream reports, found by polling the store: one poll serves every listener.

:class:`StreamPoller` remembers what it saw last and, at each poll, returns the changes as
``(event, data)`` pairs (the event names and bodies of ``GET /api/v1/stream``, see
``docs/api-contract``/README):

* ``task`` — task records whose state changed since the last poll, found from the store's
  ``P:recent`` index (scored by update time, looking :data:`LOOKBACK` seconds behind the newest
  score seen, for records flushed late) read *newest first* and capped at
  :data:`TASK_SAMPLE` per poll: under load the stream samples (the newest changes win) instead
  of growing with the fleet's throughput; one ``ZREVRANGEBYSCORE`` and one pipelined ``HMGET``.
* ``worker`` — a worker going online/offline (heartbeats, ``WorkerReader``).
* ``dlq`` — the DLQ's size changed (``ZCARD`` each poll; the per-reason count only then).
* ``breaker`` — a circuit breaker's effective state changed.
* ``alert`` — an alert's state changed (pending, firing; ``resolved`` when it disappears).
* ``kpis`` — every :data:`KPI_EVERY` seconds, the body of ``GET /api/v1/kpis?window=1h``
  (masked by the same ``mask``, the server's redactor).

All of it is synchronous Redis (and broker, for the KPIs' queue depths) I/O; the broadcaster
runs it in a worker thread so the event loop never blocks.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, cast

from celery_warden.alerts.view import AlertsView
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.read.warden_metrics import breaker_values, dlq_by_reason

#: Task state changes sent per poll at most (the newest ones).
TASK_SAMPLE = 50
#: Seconds between two ``kpis`` events (and between worker/breaker/alert checks).
KPI_EVERY = 2.0
#: Seconds the task query looks back before the newest update already seen: a record's score is
#: its update time in the recording process, and it reaches the store one flush later (or after a
#: store outage), so a record can appear below a score already seen. ``seen`` dedupes.
LOOKBACK = 5.0
#: Task ids whose last sent state is remembered (so an update without a state change is quiet).
SEEN_MAX = 10_000
TASK_FIELDS = ("name", "state", "queue", "worker")

Event = tuple[str, dict[str, Any]]


class StreamPoller:
    """Turns the store's current state into change events (not thread-safe: one poller task)."""

    def __init__(self, monitor: CeleryMonitor, alerts: AlertsView,
                 mask: Callable[[Any], Any] | None = None) -> None:
        self.monitor = monitor
        self.alerts = alerts
        self.mask = mask or (lambda value: value)
        self.redis = monitor.redis
        self.keys = monitor.keys
        self.since = time.time()
        self.next_slow = 0.0
        self.seen: OrderedDict[str, str] = OrderedDict()
        self.workers: dict[str, str] | None = None
        self.breakers: dict[str, str] | None = None
        self.alert_states: dict[str, dict[str, Any]] | None = None
        self.dlq_size: int | None = None
        #: The latest ``kpis`` and ``dlq`` bodies (sent to a listener when it connects).
        self.latest: dict[str, dict[str, Any]] = {}

    def poll(self, now: float | None = None) -> list[Event]:
        now = time.time() if now is None else now
        events = self.tasks(now)
        events += self.dlq()
        if now >= self.next_slow:
            self.next_slow = now + KPI_EVERY
            events += self.worker_changes(now)
            events += self.breaker_changes()
            events += self.alert_changes()
            kpis = {**self.mask(self.monitor.get_kpis("1h")), "ts": now}
            self.latest["kpis"] = kpis
            events.append(("kpis", kpis))
        return events

    def tasks(self, now: float) -> list[Event]:
        found = cast(list[tuple[str, float]], self.redis.zrevrangebyscore(
            self.keys.recent, "+inf", f"({self.since - LOOKBACK!r}", start=0, num=TASK_SAMPLE,
            withscores=True))
        if not found:
            return []
        self.since = max(self.since, found[0][1])
        pipe = self.redis.pipeline(transaction=False)
        for task_id, _ in found:
            pipe.hmget(self.keys.task(task_id), TASK_FIELDS)
        events: list[Event] = []
        for (task_id, ts), row in zip(reversed(found), reversed(pipe.execute()), strict=True):
            fields = dict(zip(TASK_FIELDS, row, strict=True))
            state = fields["state"]
            if state is None or self.seen.get(task_id) == state:
                continue
            self.seen[task_id] = state
            self.seen.move_to_end(task_id)
            if len(self.seen) > SEEN_MAX:
                self.seen.popitem(last=False)
            events.append(("task", {"id": task_id, **fields, "ts": ts}))
        return events

    def dlq(self) -> list[Event]:
        size = int(self.redis.zcard(self.keys.dlq))
        if size == self.dlq_size:
            return []
        self.dlq_size = size
        body = {"size": size, "by_reason": dlq_by_reason(self.redis, self.keys)}
        self.latest["dlq"] = body
        return [("dlq", body)]

    def worker_changes(self, now: float) -> list[Event]:
        current = {w["hostname"]: w["status"] for w in self.monitor.workers.health()["workers"]}
        before, self.workers = self.workers, current
        if before is None:
            return []
        return [("worker", {"hostname": host, "status": status, "ts": now})
                for host, status in current.items() if before.get(host) != status]

    def breaker_changes(self) -> list[Event]:
        current = {b.name: b.state for b in breaker_values(self.redis, self.keys)}
        before, self.breakers = self.breakers, current
        if before is None:
            return []
        return [("breaker", {"name": name, "state": state})
                for name, state in current.items() if before.get(name) != state]

    def alert_changes(self) -> list[Event]:
        current = {a["fingerprint"]: a for a in self.alerts.alerts()}
        before, self.alert_states = self.alert_states, current
        if before is None:
            return []
        events: list[Event] = [("alert", _alert(a, a["state"])) for fp, a in current.items()
                               if before.get(fp, {}).get("state") != a["state"]]
        events += [("alert", _alert(a, "resolved")) for fp, a in before.items()
                   if fp not in current]
        return events


def _alert(view: dict[str, Any], state: str) -> dict[str, Any]:
    return {"fingerprint": view["fingerprint"], "rule": view["alertname"], "state": state,
            "severity": view["severity"], "labels": view["labels"]}


__all__ = ["KPI_EVERY", "LOOKBACK", "TASK_SAMPLE", "Event", "StreamPoller"]
