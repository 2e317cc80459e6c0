"""``warden check``: is this fleet monitored and healthy? Read-only unless a queue is given.

Every check reads what Warden already keeps (store, heartbeats, broker depths, DLQ, breakers);
``--submit QUEUE`` adds an end-to-end probe: ``warden.probe`` (registered by ``Warden(app)`` on
every app) is sent to that queue and followed through Warden's own record, so any fleet can be
checked without knowing its tasks and without a result backend.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from celery_warden.read.beat import beat_queues
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.redaction import mask_url
from celery_warden.selftest.report import Check, CheckFailed, CheckSkipped, expect
from celery_warden.services import services_for
from celery_warden.tasks.probe import PROBE_TASK
from celery_warden.warden import Warden

#: The spec's alerting thresholds, used as health limits here.
FAILURE_RATE_LIMIT = 10.0
MIN_TASKS_FOR_RATE = 20
DLQ_LIMIT = 100
#: Seconds the probe may take from publish to its finished record.
PROBE_TIMEOUT = 30.0


class FleetChecks:
    """The checks ``warden check`` runs, for one monitor (and its app)."""

    def __init__(self, monitor: CeleryMonitor, submit_queue: str | None = None,
                 timeout: float = PROBE_TIMEOUT) -> None:
        self.monitor = monitor
        self.submit_queue = submit_queue
        self.timeout = timeout
        self._health: dict[str, Any] | None = None

    def checks(self) -> list[Check]:
        return [
            ("store reachable", self.store),
            ("broker reachable", self.broker),
            ("workers online", self.workers),
            ("queues consumed", self.queues),
            ("failure rate (15m)", self.failure_rate),
            ("dead letter queue", self.dlq),
            ("circuit breakers", self.breakers),
            ("probe task end to end", self.probe),
        ]

    def health(self) -> dict[str, Any]:
        if self._health is None:
            self._health = self.monitor.get_worker_health()
        return self._health

    def store(self) -> str:
        s = self.monitor.settings
        self.monitor.redis.ping()
        names = self.monitor.task_names()
        return (f"{mask_url(s.redis_url)} prefix {s.key_prefix!r}: {len(names)} task names "
                "recorded within the retention")

    def broker(self) -> str:
        depths = self.monitor.get_queue_depths()
        shown = ", ".join(f"{q}={'absent' if d is None else d}" for q, d in depths.items())
        return f"{len(depths)} queues: {shown}"

    def workers(self) -> str:
        h = self.health()
        online = [w["hostname"] for w in h["workers"] if w["status"] == "online"]
        offline = [w["hostname"] for w in h["workers"] if w["status"] != "online"]
        expect(bool(online), "no online worker (no heartbeat within "
                             f"{h['offline_after_seconds']:g}s)" +
               (f"; offline: {', '.join(offline)}" if offline else ""))
        return f"{len(online)} online ({', '.join(online)})" + (
            f", {len(offline)} offline ({', '.join(offline)})" if offline else "")

    def queues(self) -> str:
        consumed = {q for w in self.health()["workers"] if w["status"] == "online"
                    for q in w["queues"]}
        fed = beat_queues(self.monitor.app)
        depths = self.monitor.get_queue_depths()
        starved = [q for q in fed if q not in consumed]
        piling = [q for q, d in depths.items() if d and q not in consumed]
        expect(not starved, "beat feeds " + ", ".join(
            f"{q} ({', '.join(fed[q])})" for q in starved) + " but no online worker consumes it")
        expect(not piling, "messages wait in " + ", ".join(
            f"{q} ({depths[q]})" for q in piling) + " and no online worker consumes it")
        return f"consumed: {', '.join(sorted(consumed)) or '-'}"

    def failure_rate(self) -> str:
        stats = self.monitor.get_performance_stats(None, "15m")
        rate, count = stats["failure_rate"], stats["count"]
        if count < MIN_TASKS_FOR_RATE or rate is None:
            return f"{count} tasks finished (too few to judge)"
        expect(rate <= FAILURE_RATE_LIMIT,
               f"{rate:.1f}% of {count} tasks failed (limit {FAILURE_RATE_LIMIT:g}%)")
        return f"{rate:.1f}% of {count} tasks failed"

    def dlq(self) -> str:
        stats = self.monitor.dlq.stats()
        expect(stats["size"] <= DLQ_LIMIT,
               f"{stats['size']} entries (limit {DLQ_LIMIT}); see `warden dlq list`")
        return f"{stats['size']} entries"

    def breakers(self) -> str:
        found = self.monitor.get_circuit_breakers()
        open_ = [b["name"] for b in found if b["effective_state"] != "closed"]
        expect(not open_, f"not closed: {', '.join(open_)} (see `warden breakers list`)")
        return f"{len(found)} breakers, all closed"

    def probe(self) -> str:
        if not self.submit_queue:
            raise CheckSkipped("read-only run; `--submit QUEUE` sends a probe task")
        token = uuid.uuid4().hex
        task_id = f"warden-probe-{token}"
        app = self.monitor.app
        if services_for(app) is None:  # stamp and record the send as a Warden client would
            Warden(app, self.monitor.settings)
        app.send_task(PROBE_TASK, kwargs={"token": token}, task_id=task_id,
                      queue=self.submit_queue)
        deadline = time.monotonic() + self.timeout
        status = self.monitor.get_task_status(task_id)
        while status["state"] not in ("SUCCESS", "FAILURE", "REJECTED", "REVOKED"):
            if time.monotonic() > deadline:
                raise CheckFailed(f"probe {task_id} still {status['state']} after "
                                  f"{self.timeout:g}s on queue {self.submit_queue}")
            time.sleep(0.1)
            status = self.monitor.get_task_status(task_id)
        expect(status["state"] == "SUCCESS", f"probe ended {status['state']}: "
               f"{(status.get('error') or {}).get('message', '')}")
        missing = [f for f in ("sent_at", "started_at", "finished_at", "worker", "runtime")
                   if status.get(f) is None]
        expect(not missing, f"probe ran, but its record lacks {', '.join(missing)}")
        wait = status["queue_wait"]
        return (f"{task_id} ran on {status['worker']} in {status['runtime'] * 1000:.1f} ms"
                + (f" after {wait * 1000:.1f} ms in {self.submit_queue}" if wait is not None
                   else ""))


__all__ = ["FleetChecks"]
