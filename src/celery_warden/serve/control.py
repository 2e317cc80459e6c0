"""What the API changes in the fleet: submit, revoke and retry tasks; purge a queue; grow,
shrink or shut down a worker's pool (Celery's remote control).

Each function validates what it is handed against what the store knows (a task name seen by
the fleet or registered on this app, a queue Warden knows, a worker with a heartbeat) and raises
:class:`~celery_warden.serve.errors.ApiError` otherwise, so a typo is a 404/409/422 and never a
message published to a queue nobody consumes.

Retry re-publishes with the same arguments. The real arguments live in two places only: the DLQ
entry of a dead-lettered task (the message kept for requeue, never masked) and the record's
preview, which is masked and cut. So a task in the DLQ is requeued from its entry; otherwise
the preview is used only when it is complete (nothing masked, nothing cut), else 409.
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

from celery_warden.read.monitor import CeleryMonitor
from celery_warden.read.worker_detail import find_worker
from celery_warden.secret_text import MASK
from celery_warden.serve.errors import ApiError, not_found
from celery_warden.services import services_for

#: Largest JSON of a submitted task's args + kwargs.
MAX_PAYLOAD = 64 * 1024


def known_task_names(monitor: CeleryMonitor) -> set[str]:
    registered = {n for n in monitor.app.tasks if not n.startswith("celery.")}
    return registered | set(monitor.task_names())


def check_queue(monitor: CeleryMonitor, queue: str | None) -> None:
    if queue is not None and queue not in monitor.queue_names():
        raise not_found("queue", queue)


def submit(monitor: CeleryMonitor, name: str, args: list[Any], kwargs: dict[str, Any],
           queue: str | None, priority: int | None, countdown: float | None) -> str:
    if name not in known_task_names(monitor):
        raise ApiError(404, "unknown_task", f"no task named {name!r} is registered on this "
                       "app or has been seen by the fleet")
    if len(json.dumps([args, kwargs], default=str)) > MAX_PAYLOAD:
        raise ApiError(422, "payload_too_large", f"args and kwargs over {MAX_PAYLOAD} bytes")
    check_queue(monitor, queue)
    options: dict[str, Any] = {}
    if queue is not None:
        options["queue"] = queue
    if priority is not None:
        options["priority"] = priority
    if countdown:
        options["countdown"] = countdown
    result = monitor.app.send_task(name, args=args, kwargs=kwargs, **options)
    return str(result.id)


def _record(monitor: CeleryMonitor, task_id: str) -> dict[str, str]:
    """The task's record; one this process just published (still buffered) is flushed first,
    so submit-then-revoke finds it."""
    services = services_for(monitor.app)
    if services is not None and services.recorder.holds(task_id):
        services.recorder.flush()
    raw = cast(dict[str, str], monitor.redis.hgetall(monitor.keys.task(task_id)))
    if not raw:
        raise not_found("task", task_id)
    return raw


def revoke(monitor: CeleryMonitor, task_id: str, terminate: bool) -> str:
    raw = _record(monitor, task_id)
    monitor.app.control.revoke(task_id, terminate=terminate, signal="SIGTERM")
    return raw.get("state", "PENDING")


def _exact_preview(raw: str | None, empty: Any) -> Any:
    if raw in (None, ""):
        return empty
    if "…" in raw or MASK in raw:
        raise ApiError(409, "arguments_not_kept", "the task's arguments were masked or cut in "
                       "its record and it has no DLQ entry: it cannot be retried as it was")
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(409, "arguments_not_kept", "the task's arguments are not kept "
                       "in a form that can be sent again") from None


def retry(monitor: CeleryMonitor, task_id: str) -> dict[str, Any]:
    """Re-run a finished task with the same name, arguments and queue; ``{"task_id", "via"}``."""
    raw = _record(monitor, task_id)
    if raw.get("state") not in ("FAILURE", "REVOKED", "REJECTED", "SUCCESS"):
        raise ApiError(409, "not_finished", f"task is {raw.get('state', 'PENDING')}: only a "
                       "finished task can be retried")
    entry_id = raw.get("dlq_entry")
    if entry_id and monitor.dlq.get(entry_id) is not None:
        new_id = monitor.dlq.requeue(entry_id, force=True)
        if new_id is None:
            raise ApiError(409, "dlq_busy", "its DLQ entry is being processed or cannot be "
                           "replayed")
        return {"task_id": new_id, "via": "dlq", "dlq_entry": entry_id}
    name = raw.get("name")
    if not name:
        raise ApiError(409, "arguments_not_kept", "the record has no task name")
    args = _exact_preview(raw.get("args"), [])
    kwargs = _exact_preview(raw.get("kwargs"), {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ApiError(409, "arguments_not_kept", "the recorded arguments are not a list "
                       "and a mapping")
    options: dict[str, Any] = {"queue": raw["queue"]} if raw.get("queue") else {}
    result = monitor.app.send_task(name, args=args, kwargs=kwargs, **options)
    return {"task_id": str(result.id), "via": "record", "dlq_entry": None}


def purge(monitor: CeleryMonitor, queue: str) -> int:
    """Delete every waiting message of one queue (Redis priority lanes included). The time is
    kept (``P:purged:<queue>``): the purged tasks' records stay SENT, and the lost-in-transit
    detector closes them as purged instead of filing them as lost (``dlq/transit.py``)."""
    check_queue(monitor, queue)
    with monitor.app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1)
        channel: Any = conn.channel()
        try:
            purged = int(channel.queue_purge(queue) or 0)
        finally:
            channel.close()
    monitor.redis.set(monitor.keys.queue_purged(queue), repr(time.time()),
                      ex=monitor.settings.task_ttl)
    return purged


def _worker(monitor: CeleryMonitor, hostname: str) -> dict[str, Any]:
    found = find_worker(monitor, hostname)
    if found is None:
        raise not_found("worker", hostname)
    if found["status"] != "online":
        raise ApiError(409, "worker_offline", f"worker {hostname!r} is offline")
    return found


def pool(monitor: CeleryMonitor, hostname: str, grow: int, shrink: int) -> dict[str, Any]:
    _worker(monitor, hostname)
    control = monitor.app.control
    if grow:
        replies = control.pool_grow(grow, destination=[hostname], reply=True, timeout=2.0)
    else:
        replies = control.pool_shrink(shrink, destination=[hostname], reply=True, timeout=2.0)
    answer = next((r[hostname] for r in replies or [] if hostname in r), None)
    if answer is None:
        raise ApiError(504, "no_reply", f"worker {hostname!r} did not answer within 2s")
    return {"hostname": hostname, "reply": answer}


def shutdown(monitor: CeleryMonitor, hostname: str) -> None:
    _worker(monitor, hostname)
    monitor.app.control.shutdown(destination=[hostname])


__all__ = ["MAX_PAYLOAD", "known_task_names", "pool", "purge", "retry", "revoke", "shutdown",
           "submit"]
