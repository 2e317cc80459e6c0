"""Worker heartbeats, read: online/offline, heartbeat age, load and memory per worker.

Offline = last heartbeat older than ``WARDEN_WORKER_OFFLINE_AFTER``, or a final ``offline`` beat
sent on clean shutdown (state ``stopped`` at once; a worker that vanished shows ``lost``).
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

import redis

from celery_warden.keys import Keys
from celery_warden.settings import WardenSettings
from celery_warden.timefmt import iso


def _int(raw: dict[str, str], name: str) -> int:
    try:
        return int(raw.get(name, 0) or 0)
    except ValueError:
        return 0


def _json_list(raw: dict[str, str], name: str) -> list[Any]:
    try:
        value = json.loads(raw.get(name, "[]"))
    except ValueError:
        return []
    return value if isinstance(value, list) else []


class WorkerReader:
    """Reads worker heartbeats from the store."""

    def __init__(self, settings: WardenSettings, client: redis.Redis) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.redis = client

    def health(self) -> dict[str, Any]:
        """Every worker seen within the retention: online/offline, heartbeat age, load."""
        now = time.time()
        hosts = cast(
            list[tuple[str, float]],
            self.redis.zrevrange(self.keys.workers, 0, -1, withscores=True),
        )
        pipe = self.redis.pipeline(transaction=False)
        for host, _ in hosts:
            pipe.hgetall(self.keys.worker(host))
        workers = []
        for (host, last), raw in zip(hosts, pipe.execute(), strict=True):
            if not raw:
                continue
            age = max(0.0, now - float(last))
            state = raw.get("state", "online")
            online = state != "offline" and age <= self.settings.offline_after
            workers.append({
                "hostname": host,
                "status": "online" if online else "offline",
                "state": state if online else ("stopped" if state == "offline" else "lost"),
                "last_heartbeat": iso(last),
                "heartbeat_age": round(age, 3),
                "pid": _int(raw, "pid"),
                "concurrency": _int(raw, "concurrency"),
                "pool": raw.get("pool"),
                "queues": _json_list(raw, "queues"),
                "active": _int(raw, "active"),
                "reserved": _int(raw, "reserved"),
                "processed": _int(raw, "processed"),
                "loadavg": _json_list(raw, "loadavg"),
                "rss_bytes": _int(raw, "rss"),
                "started_at": iso(raw.get("started")),
            })
        online_count = sum(1 for w in workers if w["status"] == "online")
        return {
            "workers": workers,
            "online": online_count,
            "offline": len(workers) - online_count,
            "offline_after_seconds": self.settings.offline_after,
        }


__all__ = ["WorkerReader"]
