"""``CeleryMonitor``: the read side. Answers questions from the store and the broker.

Every method returns plain JSON-ready dicts (the API and CLI print them as they are) and never
raises for an unknown task or an empty window: it says so in the answer. Reads are cheap by
construction: a task lookup is one ``HGETALL``; a performance summary reads at most ~290 small
hashes in one pipeline (see :mod:`celery_warden.windows`).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from celery import Celery

from celery_warden.circuit_breaker import count_trips, read_breakers
from celery_warden.dlq import DeadLetterQueue
from celery_warden.error_groups import ErrorGroups
from celery_warden.histogram import RELATIVE_ERROR, quantiles
from celery_warden.keys import Keys
from celery_warden.queues import queue_depths
from celery_warden.redaction import decode_preview
from celery_warden.settings import WardenSettings
from celery_warden.store import redis_client
from celery_warden.windows import bucket_keys, parse_window

FINAL_OUTCOMES = ("success", "failure", "revoked", "rejected", "ignored")
#: Bucket counters written by the fleet primitives (see :mod:`celery_warden.guards`).
FLEET_COUNTS = ("duplicate", "deferred_duplicate", "deferred_store", "lease_lost",
                "deferred_rate", "deferred_circuit")


def _iso(value: str | None) -> str | None:
    if not value:
        return None
    return datetime.fromtimestamp(float(value), UTC).isoformat().replace("+00:00", "Z")


def _json(value: str | None, default: Any) -> Any:
    if not value:
        return default
    try:
        return json.loads(value)
    except ValueError:
        return default


def _num(value: str | None) -> float | None:
    return None if value in (None, "") else float(value)


class CeleryMonitor:
    """Read-only view over Warden's Redis store (and the broker, for queue depths)."""

    def __init__(self, settings: WardenSettings, app: Celery | None = None) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.redis = redis_client(settings.redis_url)
        self._app = app
        self._dlq: DeadLetterQueue | None = None
        self._errors = ErrorGroups(settings, client=self.redis)

    @property
    def app(self) -> Celery:
        if self._app is None:
            from celery_warden.config import celery_config

            self._app = Celery("celery_warden.monitor", set_as_current=False)
            self._app.conf.update(celery_config(self.settings))
        return self._app

    # -- tasks -----------------------------------------------------------------------------
    def get_task_status(self, task_id: str) -> dict[str, Any]:
        """State, timestamps, runtime, queue wait, worker, queue, retries and error of a task."""
        raw = cast(dict[str, str], self.redis.hgetall(self.keys.task(task_id)))
        if not raw:
            return {
                "task_id": task_id,
                "state": "UNKNOWN",
                "known": False,
                "detail": "no record of this task id: never seen, or older than "
                f"WARDEN_TASK_TTL ({self.settings.task_ttl}s)",
            }
        return self._status(task_id, raw)

    def _status(self, task_id: str, raw: dict[str, str]) -> dict[str, Any]:
        error = None
        if raw.get("exc_type"):
            error = {"type": raw["exc_type"], "message": raw.get("exc_msg", "")}
        started, finished = _num(raw.get("started")), _num(raw.get("finished"))
        runtime = _num(raw.get("runtime"))
        if runtime is None and started is not None and finished is None:
            runtime = None  # still running: report elapsed separately
        status: dict[str, Any] = {
            "task_id": task_id,
            "known": True,
            "state": raw.get("state", "PENDING"),
            "name": raw.get("name"),
            "queue": raw.get("queue"),
            "priority": int(raw["priority"]) if raw.get("priority", "").isdigit() else None,
            "worker": raw.get("worker"),
            "pid": int(raw["pid"]) if raw.get("pid", "").isdigit() else None,
            "retries": int(raw.get("retries") or 0),
            "sent_at": _iso(raw.get("sent")),
            "eta": _iso(raw.get("eta")),
            "received_at": _iso(raw.get("received")),
            "started_at": _iso(raw.get("started")),
            "finished_at": _iso(raw.get("finished")),
            "runtime": runtime,
            "queue_wait": _num(raw.get("wait")),
            "error": error,
            "reason": raw.get("reason"),
            "parent_id": raw.get("parent_id"),
            "root_id": raw.get("root_id"),
            # Redacted when recorded (secrets never reach the store); None before the start.
            "args": decode_preview(raw.get("args")),
            "kwargs": decode_preview(raw.get("kwargs")),
            "history": _json(raw.get("history"), []),
            "progress": _json(raw.get("progress"), None),
            "deliveries": int(raw["deliveries"]) if raw.get("deliveries", "").isdigit() else 1,
            "dlq_entry": raw.get("dlq_entry"),
            "dlq_reason": raw.get("dlq_reason"),
            "duplicate_of": raw.get("duplicate_of"),
            "idempotency_key": raw.get("idempotency_key"),
        }
        if started is not None and finished is None and status["state"] == "STARTED":
            status["elapsed"] = max(0.0, time.time() - started)
        return status

    def list_recent(self, limit: int = 20) -> list[dict[str, Any]]:
        """The most recently updated tasks, newest first."""
        ids = cast(list[str], self.redis.zrevrange(self.keys.recent, 0, max(0, limit - 1)))
        pipe = self.redis.pipeline(transaction=False)
        for tid in ids:
            pipe.hgetall(self.keys.task(tid))
        return [self._status(tid, raw) for tid, raw in zip(ids, pipe.execute(), strict=True)
                if raw]

    # -- performance -----------------------------------------------------------------------
    def task_names(self) -> list[str]:
        """Task names seen within the metric retention, most recent first."""
        cutoff = time.time() - self.settings.metrics_retention
        return cast(list[str], self.redis.zrevrangebyscore(self.keys.names, "+inf", cutoff))

    def _merged(self, names: list[str], start: float, end: float) -> dict[str, Any]:
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            for key in bucket_keys(self.keys, name, start, end):
                pipe.hgetall(key)
        counts: dict[str, int] = {}
        hist: dict[int, int] = {}
        dsum = wsum = 0.0
        dmin: float | None = None
        dmax: float | None = None
        for bucket in pipe.execute():
            for field, value in bucket.items():
                if field == "dsum":
                    dsum += float(value)
                elif field == "wsum":
                    wsum += float(value)
                elif field == "dmin":
                    dmin = float(value) if dmin is None else min(dmin, float(value))
                elif field == "dmax":
                    dmax = float(value) if dmax is None else max(dmax, float(value))
                elif field.startswith("h"):
                    idx = int(field[1:])
                    hist[idx] = hist.get(idx, 0) + int(value)
                else:
                    counts[field] = counts.get(field, 0) + int(value)
        return {"counts": counts, "hist": hist, "dsum": dsum, "wsum": wsum, "dmin": dmin,
                "dmax": dmax}

    def get_performance_stats(
        self, task_name: str | None = None, window: str | int | timedelta = "1h"
    ) -> dict[str, Any]:
        """Counts, rates, average and percentile durations and throughput over a window.

        ``task_name=None`` aggregates every task name. Rates are fractions (0..1):
        ``success_rate = success / (success + failure)``, ``failure_rate`` its complement,
        ``retry_rate = retries / tasks finished``. Percentiles come from the log-scale
        histogram (relative error <= ``histogram_relative_error``).
        """
        seconds = parse_window(window)
        end = time.time()
        start = end - seconds
        names = [task_name] if task_name else self.task_names()
        m = self._merged(names, start, end)
        c = m["counts"]
        finished = sum(c.get(o, 0) for o in FINAL_OUTCOMES)
        success, failure, retry = c.get("success", 0), c.get("failure", 0), c.get("retry", 0)
        judged = success + failure
        done = c.get("done", 0)
        q = quantiles(m["hist"], (0.5, 0.95, 0.99), m["dmin"], m["dmax"])
        return {
            "task_name": task_name,
            "window": window if isinstance(window, str) else f"{seconds}s",
            "window_seconds": seconds,
            "count": finished,
            "success": success,
            "failure": failure,
            "retry": retry,
            "revoked": c.get("revoked", 0),
            "rejected": c.get("rejected", 0),
            "success_rate": success / judged if judged else None,
            "failure_rate": failure / judged if judged else None,
            "retry_rate": retry / finished if finished else None,
            "executions": done,
            "avg_duration": m["dsum"] / done if done else None,
            "p50": q[0.5],
            "p95": q[0.95],
            "p99": q[0.99],
            "min_duration": m["dmin"],
            "max_duration": m["dmax"],
            "avg_queue_wait": m["wsum"] / c["wn"] if c.get("wn") else None,
            "throughput_per_second": finished / seconds,
            "throughput_per_minute": finished * 60.0 / seconds,
            "histogram_relative_error": round(RELATIVE_ERROR, 4),
        }

    # -- workers ---------------------------------------------------------------------------
    def get_worker_health(self) -> dict[str, Any]:
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
                "last_heartbeat": _iso(str(last)),
                "heartbeat_age": round(age, 3),
                "pid": int(raw.get("pid", 0) or 0),
                "concurrency": int(raw.get("concurrency", 0) or 0),
                "pool": raw.get("pool"),
                "queues": json.loads(raw.get("queues", "[]")),
                "active": int(raw.get("active", 0) or 0),
                "reserved": int(raw.get("reserved", 0) or 0),
                "processed": int(raw.get("processed", 0) or 0),
                "loadavg": json.loads(raw.get("loadavg", "[]")),
                "rss_bytes": int(raw.get("rss", 0) or 0),
                "started_at": _iso(raw.get("started")),
            })
        online = sum(1 for w in workers if w["status"] == "online")
        return {
            "workers": workers,
            "online": online,
            "offline": len(workers) - online,
            "offline_after_seconds": self.settings.offline_after,
        }

    # -- queues ----------------------------------------------------------------------------
    def queue_names(self) -> list[str]:
        configured = [q.name for q in (self.app.conf.task_queues or [])]
        seen = cast(list[str], self.redis.zrevrange(self.keys.queues, 0, 99))
        return list(dict.fromkeys(configured + seen))

    def get_queue_depths(self, names: list[str] | None = None) -> dict[str, int | None]:
        """Messages waiting per queue (Redis priority sub-queues summed; RabbitMQ ready count)."""
        return queue_depths(self.app, names or self.queue_names())

    # -- errors and the DLQ -----------------------------------------------------------------
    @property
    def dlq(self) -> DeadLetterQueue:
        """The dead letter queue (list, get, process, park, discard, requeue)."""
        if self._dlq is None:
            self._dlq = DeadLetterQueue(self.settings, app=self._app, client=self.redis)
        return self._dlq

    def get_error_groups(self, limit: int = 20,
                         window: str | int | timedelta | None = None) -> list[dict[str, Any]]:
        """Failures grouped by fingerprint, most recent first (``window`` adds window counts)."""
        seconds = None if window is None else parse_window(window)
        return self._errors.list(limit, seconds)

    def get_recent_errors(self, limit: int = 10) -> list[dict[str, Any]]:
        """The most recent failure groups with a sample each (the spec's ``/errors?limit=``)."""
        return [
            {k: g[k] for k in ("fingerprint", "exc_type", "sample_message", "count", "last_seen",
                                "task_names", "recent_task_ids", "frame")}
            for g in self._errors.list(limit)
        ]

    def get_dlq_summary(self) -> dict[str, Any]:
        """DLQ size, counters per outcome and per reason."""
        return self.dlq.stats()

    # -- KPIs ------------------------------------------------------------------------------
    def get_recorder_stats(self) -> dict[str, int]:
        raw = cast(dict[str, str], self.redis.hgetall(self.keys.stats("recorder")))
        return {k: int(v) for k, v in raw.items()}

    def get_kpis(self, window: str | int | timedelta = "1h") -> dict[str, Any]:
        """The spec's seven KPIs over a window, each with where its number comes from."""
        overall = self.get_performance_stats(None, window)
        per_task = {
            name: self.get_performance_stats(name, window)["avg_duration"]
            for name in self.task_names()
        }
        try:
            depths: dict[str, int | None] | None = self.get_queue_depths()
            depth_source = "broker"
        except Exception as exc:
            depths, depth_source = None, f"broker unreachable: {type(exc).__name__}"
        health = self.get_worker_health()
        busy = sum(w["active"] for w in health["workers"] if w["status"] == "online")
        slots = sum(w["concurrency"] for w in health["workers"] if w["status"] == "online")
        return {
            "window": overall["window"],
            "task_success_rate": {"value": overall["success_rate"], "source": "metric buckets"},
            "average_task_duration": {"value": per_task, "source": "metric buckets"},
            "queue_depth": {
                "value": None if depths is None else sum(v or 0 for v in depths.values()),
                "per_queue": depths, "source": depth_source,
            },
            "worker_utilization": {
                "value": busy / slots if slots else None,
                "per_worker": {w["hostname"]: (w["active"] / w["concurrency"]
                                               if w["concurrency"] else None)
                               for w in health["workers"] if w["status"] == "online"},
                "source": "worker heartbeats",
            },
            "retry_rate": {"value": overall["retry_rate"], "source": "metric buckets"},
            "dlq_size": {"value": self.dlq.size(), "source": "dead letter queue"},
            "circuit_breaker_trips": {
                "value": self._trips(window),
                "source": "circuit breaker trip log (every transition to open, fleet-wide)",
            },
        }

    # -- fleet primitives ------------------------------------------------------------------
    def _trips(self, window: str | int | timedelta) -> int:
        end = time.time()
        return count_trips(self.redis, self.keys, end - parse_window(window), end)

    def get_circuit_breakers(self) -> list[dict[str, Any]]:
        """Every circuit breaker: state, window counts, trips, config, recent transitions."""
        return read_breakers(self.redis, self.keys)

    def get_fleet_primitives(self, window: str | int | timedelta = "1h") -> dict[str, Any]:
        """Circuit breakers, idempotency and fleet rate limits over a window.

        Counts come from the per-minute metric buckets (outcomes the guards record without
        I/O): ``duplicates`` are deliveries that returned an earlier run's result instead of
        running; ``deferred`` counts deferrals (a task may be deferred several times).
        """
        seconds = parse_window(window)
        end = time.time()
        per_task: dict[str, dict[str, int]] = {}
        totals = dict.fromkeys(FLEET_COUNTS, 0)
        for name in self.task_names():
            counts = self._merged([name], end - seconds, end)["counts"]
            row = {field: int(counts.get(field, 0)) for field in FLEET_COUNTS}
            if any(row.values()):
                per_task[name] = row
                for field, value in row.items():
                    totals[field] += value
        return {
            "window": window if isinstance(window, str) else f"{seconds}s",
            "circuit_breakers": {
                "trips": self._trips(window),
                "deferred": totals["deferred_circuit"],
                "breakers": self.get_circuit_breakers(),
            },
            "idempotency": {
                "duplicates": totals["duplicate"],
                "deferred_while_running": totals["deferred_duplicate"],
                "deferred_store_unreachable": totals["deferred_store"],
                "leases_lost": totals["lease_lost"],
            },
            "rate_limits": {"deferred": totals["deferred_rate"]},
            "per_task": per_task,
        }


__all__ = ["CeleryMonitor"]
