"""Ground truth kept outside Warden: what ran, where, and what the driver did.

Task bodies write here — a separate Redis database on the chaos run's own server, never Warden's
keys — so the reconciliation compares Warden's store with facts Warden did not write:

- ``chaos:started`` list of ``"<task id> <pid> <retries> <unix time>"``: every execution that began;
- ``chaos:done`` list of task ids: every body that ran to its successful end;
- ``chaos:finished`` list of task ids: every delivery of ``chaos.idempotent`` that ended in
  SUCCESS, duplicates included (their body does not run);
- ``chaos:fixed`` flag: set by the driver once "failing" tasks may succeed (DLQ requeue test).

A write retries while the server restarts (the Redis-restart fault), so the truth itself is
never the thing that was lost.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis

STARTED = "chaos:started"
DONE = "chaos:done"
FINISHED = "chaos:finished"
FIXED = "chaos:fixed"
#: How long a truth write waits for a restarting server before giving up (it then raises).
PATIENCE = 60.0

_clients: dict[int, redis.Redis] = {}


def client(url: str | None = None) -> redis.Redis:
    """One client per process (never a parent's after fork)."""
    pid = os.getpid()
    found = _clients.get(pid)
    if found is None:
        found = _clients[pid] = redis.Redis.from_url(
            url or os.environ["CHAOS_TRUTH_URL"], decode_responses=True,
            socket_timeout=5, socket_connect_timeout=2)
    return found


def _retrying(op: Any) -> Any:
    deadline = time.monotonic() + PATIENCE
    while True:
        try:
            return op(client())
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def started(task_id: str, retries: int) -> None:
    _retrying(lambda c: c.rpush(STARTED, f"{task_id} {os.getpid()} {retries} {time.time():.3f}"))


def done(task_id: str) -> None:
    _retrying(lambda c: c.rpush(DONE, task_id))


def finished(task_id: str) -> None:
    _retrying(lambda c: c.rpush(FINISHED, task_id))


def fixed() -> bool:
    return bool(_retrying(lambda c: c.get(FIXED)))
