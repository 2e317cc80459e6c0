"""Worker online/offline history: transitions the sampler of ``warden serve`` detects.

Heartbeats say only what a worker is *now*; the sampler compares that with what it saw last
(``P:workers:status``) and records every change:

* ``offline`` / ``shutdown``: the worker's last beat was its clean-shutdown beat; at that beat.
* ``offline`` / ``lost``: no beat for ``WARDEN_WORKER_OFFLINE_AFTER``; at the moment the
  threshold passed (last beat + threshold), not when the sampler noticed (``detected_at``).
* ``offline`` / ``expired``: its heartbeat record is gone from the store (pruned) while online.
* ``online`` / ``started`` (first seen) or ``heartbeat`` (back after being offline): at its beat.

A worker already offline when first observed gets a status (so ``offline_since``) but no
transition: nobody saw it go. Bounded: fleet-wide by count and age, per worker by count (and a
TTL of the age).
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

import redis

from celery_warden.keys import Keys
from celery_warden.timefmt import iso

#: Transitions kept per worker.
PER_WORKER = 100


def _loads(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _shown(entry: dict[str, Any]) -> dict[str, Any]:
    return {**entry, "at": iso(entry.get("ts"))}


def went_offline_at(worker: dict[str, Any], offline_after: float, now: float) -> float:
    """When an offline worker (a row of ``WorkerReader.health``) became offline."""
    last = now - float(worker["heartbeat_age"])
    return last if worker["state"] == "stopped" else last + offline_after


class WorkerHistory:
    """Reads and writes the worker transition history of one fleet (one key prefix)."""

    def __init__(self, client: redis.Redis, keys: Keys, max_count: int = 1000,
                 max_age: int = 7 * 86400) -> None:
        self.redis = client
        self.keys = keys
        self.max_count = max_count
        self.max_age = max_age

    def statuses(self) -> dict[str, dict[str, Any]]:
        raw = cast(dict[str, str], self.redis.hgetall(self.keys.worker_status))
        return {h: v for h, text in raw.items() if (v := _loads(text)) is not None}

    def changes(self, workers: list[dict[str, Any]], known: dict[str, dict[str, Any]],
                offline_after: float, now: float
                ) -> tuple[dict[str, dict[str, Any]], list[str], list[dict[str, Any]]]:
        """Compare heartbeats with the last statuses: ``(statuses to set, hostnames to forget,
        transitions)``."""
        put: dict[str, dict[str, Any]] = {}
        transitions: list[dict[str, Any]] = []
        seen = set()
        for w in workers:
            host, status = str(w["hostname"]), str(w["status"])
            seen.add(host)
            prev = known.get(host)
            if prev is not None and prev.get("status") == status:
                continue
            beat = now - float(w["heartbeat_age"])
            if status == "online":
                reason = "started" if prev is None else "heartbeat"
                at = min(beat, now)
            else:
                reason = "shutdown" if w["state"] == "stopped" else "lost"
                at = min(went_offline_at(w, offline_after, now), now)
            put[host] = {"status": status, "since": round(at, 3), "reason": reason}
            if prev is not None or status == "online":
                transitions.append({"hostname": host, "status": status, "reason": reason,
                                    "ts": round(at, 3), "detected_at": round(now, 3)})
        forget = []
        for host, prev in known.items():
            if host in seen:
                continue
            forget.append(host)
            if prev.get("status") == "online":
                transitions.append({"hostname": host, "status": "offline", "reason": "expired",
                                    "ts": round(now, 3), "detected_at": round(now, 3)})
        return put, forget, transitions

    def write(self, pipe: Any, put: dict[str, dict[str, Any]], forget: list[str],
              transitions: list[dict[str, Any]], now: float) -> None:
        """Queue the writes of one observation on ``pipe`` (the caller's transaction)."""
        if put:
            pipe.hset(self.keys.worker_status,
                      mapping={h: json.dumps(v) for h, v in put.items()})
        if forget:
            pipe.hdel(self.keys.worker_status, *forget)
        for t in transitions:
            text = json.dumps(t, sort_keys=True)
            pipe.zadd(self.keys.worker_history, {text: t["ts"]})
            one = self.keys.worker_transitions(t["hostname"])
            pipe.lpush(one, text)
            pipe.ltrim(one, 0, PER_WORKER - 1)
            pipe.expire(one, self.max_age)
        if transitions:
            pipe.zremrangebyscore(self.keys.worker_history, "-inf", now - self.max_age)
            pipe.zremrangebyrank(self.keys.worker_history, 0, -self.max_count - 1)

    # -- reads -------------------------------------------------------------------------------
    def recent(self, limit: int = 100, hostname: str | None = None) -> list[dict[str, Any]]:
        """Newest first: fleet-wide, or one worker's."""
        if hostname is None:
            members = cast(list[str], self.redis.zrevrangebyscore(
                self.keys.worker_history, "+inf", time.time() - self.max_age,
                start=0, num=limit))
        else:
            members = cast(list[str], self.redis.lrange(
                self.keys.worker_transitions(hostname), 0, limit - 1))
        return [_shown(e) for m in members if (e := _loads(m)) is not None]

    def offline_since(self, workers: list[dict[str, Any]], offline_after: float,
                      now: float) -> dict[str, str | None]:
        """ISO time each offline worker went offline: as the sampler recorded it, else from
        its heartbeat (no sampler ran since)."""
        known = self.statuses()
        out: dict[str, str | None] = {}
        for w in workers:
            if w["status"] != "offline":
                continue
            status = known.get(str(w["hostname"]))
            at = (status["since"] if status and status.get("status") == "offline"
                  else went_offline_at(w, offline_after, now))
            out[str(w["hostname"])] = iso(at)
        return out


__all__ = ["PER_WORKER", "WorkerHistory", "went_offline_at"]
