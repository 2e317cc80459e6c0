"""Fleet health in one answer: the store answers, the broker answers, a worker is online.

What ``GET /api/v1/monitoring/health`` returns and load balancers and Kubernetes probes use:
healthy only when all three hold, otherwise the reasons, one per failed check. Each check is
bounded by the short socket timeouts Warden uses everywhere, so a dead dependency answers
"unhealthy" within seconds instead of hanging the probe.
"""

from __future__ import annotations

import time
from typing import Any

import redis
from celery import Celery

from celery_warden.read.broker_pool import round_trip, using
from celery_warden.timefmt import iso

#: Seconds the broker check may take.
BROKER_TIMEOUT = 3


def store_answers(client: redis.Redis) -> str | None:
    """``None`` when the store answers a PING, else why not."""
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return f"store does not answer: {type(exc).__name__}"
    return None


def broker_answers(app: Celery) -> str | None:
    """``None`` when a connection to the broker can be made, else why not."""
    try:  # a pooled connection (read/broker_pool.py), asked something: probes come often
        using(app, _probe, write=True)
    except Exception as exc:  # kombu raises its own and the transport's errors
        return f"broker does not answer: {type(exc).__name__}"
    return None


def _probe(conn: Any) -> None:
    conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT)
    round_trip(conn)


def fleet_health(client: redis.Redis, app: Celery, workers_online: Any) -> dict[str, Any]:
    """The three checks; ``workers_online`` is called only when the store answers."""
    reasons: list[str] = []
    store_error = store_answers(client)
    if store_error:
        reasons.append(store_error)
    broker_error = broker_answers(app)
    if broker_error:
        reasons.append(broker_error)
    online = 0
    if store_error is None:
        online = int(workers_online())
        if online == 0:
            reasons.append("no worker online (no heartbeat within WARDEN_WORKER_OFFLINE_AFTER)")
    return {
        "status": "ok" if not reasons else "unhealthy",
        "store": store_error is None,
        "broker": broker_error is None,
        "workers_online": online,
        "reasons": reasons,
        "checked_at": iso(time.time()),
    }


__all__ = ["broker_answers", "fleet_health", "store_answers"]
