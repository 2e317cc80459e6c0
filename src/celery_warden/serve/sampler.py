"""The history sampler of ``warden serve``: exactly one per fleet, whichever replica holds it.

Every ``WARDEN_QUEUE_SAMPLE_INTERVAL`` (``I``) it reads every known queue's depth and oldest
message age through the queue readers and the workers' heartbeats, and records the depths
(:mod:`celery_warden.read.depth_history`) and the workers' online/offline transitions
(:mod:`celery_warden.read.worker_history`); every ``WARDEN_SERVE_RETENTION_INTERVAL`` it runs
the retention sweep, so a fleet without the reference app's beat still gets the success-record
policy and the record cap.

One per fleet, like the alert evaluator: every replica wakes every ``I/4`` to acquire or renew
a Redis lease (``P:sampler:lease``, time to live ``2I/3``; the same compare-and-set script as
the alerts' lease); if its holder dies, the lease lapses and another replica takes it within
one interval. Times of the last sample and sweep live in the store (``P:sampler:state``), so
a new holder continues the rhythm instead of sampling twice. Each round is written in one
``MULTI`` under ``WATCH`` of the lease and that state, after checking the lease is still ours:
a holder that stalled past its lease (a slow broker) writes nothing, so no sample is doubled.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, cast

import redis

from celery_warden.read.depth_history import DepthHistory, DepthSample
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.read.worker_history import WorkerHistory
from celery_warden.record.retention import sweep_retention
from celery_warden.scripts import script
from celery_warden.settings import WardenSettings

logger = logging.getLogger("celery_warden.serve.sampler")
NOT_HELD = 0


class Sampler:
    """Samples queue depth and worker status, and sweeps, under the fleet's sampler lease."""

    def __init__(self, settings: WardenSettings, monitor: CeleryMonitor) -> None:
        self.settings = settings
        self.monitor = monitor
        self.redis: redis.Redis = monitor.redis
        self.keys = monitor.keys
        self.depths = DepthHistory(self.redis, self.keys, settings.queue_sample_interval)
        self.workers = WorkerHistory(self.redis, self.keys, settings.worker_history_max,
                                     settings.worker_history_max_age)
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.interval = settings.queue_sample_interval
        self.lease_ttl = self.interval * 2 / 3
        self.tick = self.interval / 4
        self.leader = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the lease ---------------------------------------------------------------------------
    def hold_lease(self) -> bool:
        try:
            held = int(script(self.redis, "alerts_lease")(
                keys=[self.keys.sampler_lease],
                args=[self.token, int(self.lease_ttl * 1000), "hold"]))
        except Exception as exc:  # Redis down: nobody samples
            logger.warning("warden serve: cannot reach Redis for the sampler lease: %s", exc)
            held = NOT_HELD
        if held == 2:
            logger.info("warden serve: this process (%s) now samples the fleet's history",
                        self.token)
        self.leader = held != NOT_HELD
        return self.leader

    def release(self) -> None:
        with contextlib.suppress(Exception):  # Redis down: the lease lapses by itself
            script(self.redis, "alerts_lease")(keys=[self.keys.sampler_lease],
                                               args=[self.token, 0, "release"])
        self.leader = False

    def _last(self, field: str) -> float:
        value = self.redis.hget(self.keys.sampler_state, field)
        try:
            return float(cast(str, value)) if value else 0.0
        except ValueError:
            return 0.0

    # -- one round ---------------------------------------------------------------------------
    def collect(self) -> tuple[list[DepthSample], list[dict[str, Any]]]:
        """Read the queues (depth, oldest age) and the workers' heartbeats. A broker that does
        not answer costs that round's depth samples (a gap in the series, logged), not the
        workers' transitions, which come from the store."""
        names = self.monitor.queue_names()
        try:
            depths = self.monitor.get_queue_depths(names) if names else {}
        except Exception as exc:
            logger.warning("warden serve: queue depths not sampled: %s: %s",
                           type(exc).__name__, exc)
            depths = {}
        try:
            ages = self.monitor.get_queue_latency(names) if depths else {}
        except Exception as exc:  # the age is informative: the depth already answered
            logger.debug("warden serve: oldest ages unavailable: %s", exc)
            ages = {}
        samples = [DepthSample(n, int(d), (ages.get(n) or {}).get("age"))
                   for n, d in depths.items() if d is not None]
        return samples, list(self.monitor.get_worker_health()["workers"])

    def sample(self, now: float | None = None) -> bool:
        """One round, if this process holds the lease and the interval has passed since the
        fleet's last sample; ``True`` when it was written."""
        if self.interval - self.tick / 2 > time.time() - self._last("last_sample"):
            return False
        samples, workers = self.collect()
        now = round(time.time() if now is None else now, 1)  # as stored: one bucket
        with self.redis.pipeline() as pipe:
            pipe.watch(self.keys.sampler_lease,  # type: ignore[no-untyped-call]
                       self.keys.sampler_state)
            if pipe.get(self.keys.sampler_lease) != self.token:
                return False
            last = pipe.hget(self.keys.sampler_state, "last_sample")
            if last and self.interval - self.tick / 2 > now - float(last):
                return False
            current = self.depths.current([s.queue for s in samples], now)
            put, forget, transitions = self.workers.changes(
                workers, self.workers.statuses(), self.settings.offline_after, now)
            pipe.multi()
            self.depths.write(pipe, samples, now, current)
            self.workers.write(pipe, put, forget, transitions, now)
            pipe.hset(self.keys.sampler_state,
                      mapping={"last_sample": repr(now), "owner": self.token})
            try:
                pipe.execute()
            except redis.WatchError:
                return False
        for t in transitions:
            logger.info("warden serve: worker %s %s (%s)", t["hostname"], t["status"],
                        t["reason"])
        return True

    def sweep(self) -> dict[str, int] | None:
        """The retention sweep, when its interval has passed (``None`` otherwise)."""
        every = self.settings.serve_retention_interval
        if not every or time.time() - self._last("last_sweep") < every - self.tick / 2:
            return None
        self.redis.hset(self.keys.sampler_state, "last_sweep", repr(time.time()))
        return sweep_retention(self.settings, self.redis)

    # -- as a service ------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.hold_lease():
                for step in (self.sample, self.sweep):
                    try:
                        step()
                    except Exception:
                        logger.exception("warden serve: history %s failed", step.__name__)
            self._stop.wait(self.tick)

    def start(self) -> Sampler:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="warden-sampler",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and give the lease up, so another replica takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.release()


__all__ = ["Sampler"]
