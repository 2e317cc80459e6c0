"""Store housekeeping: trim indexes whose entries outlived the records they point to.

The task indexes (``P:recent``, the search indexes by name, state and id) are trimmed by the
same script the retention sweep runs (:func:`~celery_warden.record.retention.trim_indexes`).

Records and buckets expire by themselves (Redis TTLs); the sorted-set indexes do not, so a beat
task calls :func:`prune_store` every few minutes. Every removal is counted and returned.
"""

from __future__ import annotations

import time
from typing import cast

from celery_warden.keys import Keys
from celery_warden.record.retention import trim_indexes
from celery_warden.services import redis_client
from celery_warden.settings import WardenSettings


def prune_store(settings: WardenSettings, now: float | None = None) -> dict[str, int]:
    """Remove index entries older than their retention; returns how many per index."""
    now = time.time() if now is None else now
    keys = Keys(settings.key_prefix)
    client = redis_client(settings.redis_url)
    try:
        recent, _ = trim_indexes(client, keys, now - settings.task_ttl)
        pipe = client.pipeline(transaction=False)
        pipe.zremrangebyscore(keys.names, "-inf", now - settings.metrics_retention)
        pipe.zremrangebyscore(keys.queues, "-inf", now - settings.metrics_retention)
        stale = cast(
            list[str], client.zrangebyscore(keys.workers, "-inf", now - settings.metrics_retention)
        )
        pipe.zremrangebyscore(keys.workers, "-inf", now - settings.metrics_retention)
        for host in stale:
            pipe.delete(keys.worker(host))
        old_groups = cast(list[str], client.zrangebyscore(
            keys.error_groups, "-inf", now - settings.metrics_retention))
        pipe.zremrangebyscore(keys.error_groups, "-inf", now - settings.metrics_retention)
        for fp in old_groups:
            pipe.delete(keys.error_group(fp), keys.error_group_tasks(fp))
        names, queues, workers, *rest = pipe.execute()
        errors = rest[len(stale)]
    finally:
        client.close()
    return {"recent": recent, "names": names, "queues": queues, "workers": workers,
            "errors": errors}


__all__ = ["prune_store"]
