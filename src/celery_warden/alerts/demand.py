"""Per-queue load for the autoscaler: backlog, arrival rate, service time, processes.

Where each number comes from:

* **queued**: the broker's depth (Redis: every priority list summed; RabbitMQ: ready messages);
* **reserved / active / processes**: worker heartbeats. A worker consuming several queues has
  its prefetched and running tasks and its pool slots split evenly among them (heartbeats do
  not say which queue a reserved message came from);
* **completions and service time**: metric buckets are per task name, so the queue's mix of
  task names is read from the most recent task records (``MIX_SAMPLE`` of them: name and queue
  each) and every name's completions and run time are shared out accordingly;
* **arrival rate** = completions per second + how fast the backlog grew, from the backlog the
  autoscaler remembered at its earlier answers within the window (``P:autoscale:<queue>``).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, cast

from celery_warden.read.metrics import FINAL_OUTCOMES
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.record.windows import bucket_keys
from celery_warden.settings import WardenSettings

#: Recent task records read to learn which task names go to which queue.
MIX_SAMPLE = 500
#: Raw recommendations kept per queue (beyond the stabilization window they are trimmed).
HISTORY_MAX = 1000
#: Backlog growth is measured over at least this many seconds (shorter is noise).
MIN_GROWTH_SPAN = 5.0


@dataclass(frozen=True, slots=True)
class QueueLoad:
    """What one queue asks of the fleet now."""

    queue: str
    queued: int
    reserved: int
    active: int
    arrival_rate: float | None
    completion_rate: float | None
    service_time: float | None
    current_processes: int
    oldest_age: float | None = None

    @property
    def backlog(self) -> int:
        return self.queued + self.reserved


class Demand:
    """Reads :class:`QueueLoad` for the queues of one fleet."""

    def __init__(self, settings: WardenSettings, monitor: CeleryMonitor) -> None:
        self.settings = settings
        self.monitor = monitor
        self.redis = monitor.redis
        self.keys = monitor.keys

    def queue_names(self) -> list[str]:
        return self.monitor.queue_names()

    def _mix(self) -> dict[str, dict[str, float]]:
        """name -> {queue: share of that name's recent tasks}."""
        ids = cast(list[str], self.redis.zrevrange(self.keys.recent, 0, MIX_SAMPLE - 1))
        pipe = self.redis.pipeline(transaction=False)
        for task_id in ids:
            pipe.hmget(self.keys.task(task_id), "name", "queue")
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for name, queue in pipe.execute():
            if name and queue:
                counts[name][queue] += 1
        return {n: {q: c / sum(qs.values()) for q, c in qs.items()} for n, qs in counts.items()}

    def _rates(self, now: float) -> dict[str, tuple[int, int, float]]:
        """name -> (finished, executions, run-time sum) over the window, one pipeline."""
        window = self.settings.autoscale_window
        names = self.monitor.task_names()
        plan = {n: bucket_keys(self.keys, n, now - window, now) for n in names}
        pipe = self.redis.pipeline(transaction=False)
        for keys in plan.values():
            for key in keys:
                pipe.hgetall(key)
        replies = iter(pipe.execute())
        out = {}
        for name, keys in plan.items():
            finished = done = 0
            dsum = 0.0
            for _ in keys:
                bucket = next(replies)
                finished += sum(int(bucket.get(o, 0)) for o in FINAL_OUTCOMES)
                done += int(bucket.get("done", 0))
                dsum += float(bucket.get("dsum", 0.0))
            out[name] = (finished, done, dsum)
        return out

    def _workers(self) -> dict[str, list[float]]:
        """queue -> [reserved, active, processes] from online workers' heartbeats."""
        shares: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        for w in self.monitor.get_worker_health()["workers"]:
            if w["status"] != "online" or not w["queues"]:
                continue
            part = 1.0 / len(w["queues"])
            for q in w["queues"]:
                s = shares[str(q)]
                s[0] += w["reserved"] * part
                s[1] += w["active"] * part
                s[2] += w["concurrency"] * part
        return shares

    def loads(self, names: list[str], now: float | None = None) -> list[QueueLoad]:
        now = time.time() if now is None else now
        depths = self.monitor.get_queue_depths(names)
        try:
            ages: dict[str, dict[str, Any]] = self.monitor.get_queue_latency(names)
        except Exception:  # latency is informative only; depth already answered
            ages = {}
        workers = self._workers()
        mix = self._mix()
        rates = self._rates(now)
        window = self.settings.autoscale_window
        out = []
        for queue in names:
            finished = done = 0.0
            dsum = 0.0
            for name, (f, d, s) in rates.items():
                share = mix.get(name, {}).get(queue, 0.0)
                finished += share * f
                done += share * d
                dsum += share * s
            reserved, active, processes = workers.get(queue, [0.0, 0.0, 0.0])
            queued = int(depths.get(queue) or 0)
            backlog = queued + round(reserved)
            completion = finished / window
            growth = self._growth(queue, backlog, now)
            out.append(QueueLoad(
                queue=queue, queued=queued, reserved=round(reserved), active=round(active),
                arrival_rate=round(max(0.0, completion + growth), 4),
                completion_rate=round(completion, 4),
                service_time=round(dsum / done, 6) if done else None,
                current_processes=round(processes),
                oldest_age=(ages.get(queue) or {}).get("age")))
        return out

    # -- remembered answers --------------------------------------------------------------------
    def samples(self, queue: str) -> list[tuple[float, int, int]]:
        """``(ts, desired, backlog)`` remembered at earlier answers, oldest first."""
        raw = self.redis.zrange(self.keys.autoscale(queue), 0, -1, withscores=True)
        out = []
        for member, score in cast(list[tuple[str, float]], raw):
            parts = member.split(":")
            if len(parts) == 3:
                out.append((float(score), int(parts[1]), int(parts[2])))
        return out

    def _growth(self, queue: str, backlog: int, now: float) -> float:
        window = self.settings.autoscale_window
        earlier = [(ts, b) for ts, _, b in self.samples(queue)
                   if MIN_GROWTH_SPAN <= now - ts <= window]
        if not earlier:
            return 0.0
        ts, then = earlier[0]
        return (backlog - then) / (now - ts)

    def history(self, queue: str, now: float) -> list[tuple[float, int]]:
        return [(ts, n) for ts, n, _ in self.samples(queue)]

    def remember(self, queue: str, now: float, desired: int, backlog: int) -> None:
        key = self.keys.autoscale(queue)
        keep = max(self.settings.autoscale_stabilization, self.settings.autoscale_window) + 60
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(key, {f"{now!r}:{desired}:{backlog}": now})
        pipe.zremrangebyscore(key, "-inf", now - keep)
        pipe.zremrangebyrank(key, 0, -HISTORY_MAX - 1)
        pipe.expire(key, int(keep) + 60)
        pipe.execute()


__all__ = ["HISTORY_MAX", "MIX_SAMPLE", "Demand", "QueueLoad"]
