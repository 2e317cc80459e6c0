"""The ceiling of one Redis: its CPU per task under a whole fleet's writes and reads.

A simulated fleet of ``--workers`` workers x ``--procs`` pool processes (default 200 x 8) plus
``--producers`` publishing processes drives a Redis server of its own through Warden's real
components, in 250 ms ticks (the default flush interval):

* every task: the publisher's SENT record and the pool child's final record with its metrics,
  each buffered by that process's own :class:`Recorder` and written by its own flush, so the
  store sees what a real fleet sends: one small chunk per busy process per tick;
* heartbeats of every worker every ``WARDEN_HEARTBEAT_INTERVAL``;
* fleet primitives at a realistic mix: 20 % of tasks behind a circuit breaker (acquire +
  record), 10 % through a fleet rate limit, 5 % idempotent (claim + complete);
* one ``warden serve`` polling: KPIs every 2 s, worker health every 5 s, 10 task lookups/s.

Each phase runs one fleet-wide rate for ``--seconds`` and reads Redis's own CPU time
(``INFO cpu``) before and after; Redis CPU per task = a fixed part (flush chunks, heartbeats,
polling) that a linear fit over the phases separates from the per-task part. The ceiling is the
rate at which Redis would need one full core, and the sustainable rate (70 % of a core, the
headroom a single-threaded server needs for bursts) is printed next to it.

    python bench/redis_ceiling.py                 # phases at 500, 1000, 2000 tasks/s
    python bench/redis_ceiling.py --rates 1000,4000 --seconds 30

The generator itself is Python on the same machine: when it cannot keep a phase's rate, the
achieved rate is what is used (and printed).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from celery_warden.embedded import EmbeddedRedis  # noqa: E402
from celery_warden.errors import CircuitOpenError  # noqa: E402
from celery_warden.fleet.breaker import CircuitBreaker  # noqa: E402
from celery_warden.fleet.idempotency import IdempotencyStore  # noqa: E402
from celery_warden.fleet.rate_limit import FleetRateLimiter, Limit, parse_rate  # noqa: E402
from celery_warden.keys import Keys  # noqa: E402
from celery_warden.read.monitor import CeleryMonitor  # noqa: E402
from celery_warden.record.order import RANK_FINAL, RANK_SENT  # noqa: E402
from celery_warden.record.recorder import Recorder  # noqa: E402
from celery_warden.settings import WardenSettings, load_settings  # noqa: E402

TICK = 0.25


class Fleet:
    """Recorders standing for every process of the fleet, and the primitives' clients."""

    def __init__(self, settings: WardenSettings, workers: int, procs: int,
                 producers: int) -> None:
        self.settings = settings
        self.workers = workers
        self.children = [self._recorder() for _ in range(workers * procs)]
        self.mains = [self._recorder() for _ in range(workers)]
        self.producers = [self._recorder() for _ in range(producers)]
        self.breakers = [CircuitBreaker(f"payments-{i}", settings=settings, minimum_calls=1000,
                                       window_size=1000)
                         for i in range(5)]
        self.limiter = FleetRateLimiter(settings)
        keys = Keys(settings.key_prefix)
        self.limits = [Limit(keys.ratelimit("task", f"api-{i}"), parse_rate("100000/s"),
                             f"api-{i}") for i in range(5)]
        self.idem = IdempotencyStore(settings)
        self.monitor = CeleryMonitor(settings)
        self.task_ids: list[str] = []
        self.last_beat = 0.0
        self.next_poll = {"kpis": 0.0, "health": 0.0}

    def _recorder(self) -> Recorder:
        r = Recorder(self.settings)
        r.stop()  # its thread restarts on the first record, as in a real process
        return r

    def task(self, i: int, now: float) -> None:
        task_id = str(uuid.uuid4())
        name = f"app.tasks.job_{i % 200}"
        queue = ("default", "high_priority", "low_priority")[i % 3]
        static = {"name": name, "queue": queue, "sent": now - 0.02, "priority": "",
                  "args": f"({i},)", "kwargs": "{}"}
        self.producers[i % len(self.producers)].task(
            task_id, static=static, attempt={"state": "SENT"}, rank=RANK_SENT)
        child = random.randrange(len(self.children))
        worker = f"celery@worker-{child // (len(self.children) // self.workers)}"
        runtime, wait = 0.01, 0.01
        self.children[child].task(
            task_id, static=static,
            attempt={"state": "SUCCESS", "started": now - runtime, "received": now - 0.015,
                     "worker": worker, "pid": 1000 + child % 8, "wait": wait,
                     "finished": now, "runtime": runtime}, rank=RANK_FINAL)
        self.children[child].observe(name, now, "success", runtime, wait, queue)
        roll = i % 100
        if roll < 20:
            breaker = self.breakers[i % 5]
            with contextlib.suppress(CircuitOpenError):
                breaker.record(breaker.acquire())
        elif roll < 30:
            self.limiter.reserve([self.limits[i % 5]], 300)
        elif roll < 35:
            key = f"order-{task_id}"
            self.idem.claim(key, task_id, 60)
            self.idem.complete(key, task_id, i, 3600)
        if len(self.task_ids) < 10_000:
            self.task_ids.append(task_id)
        else:
            self.task_ids[i % 10_000] = task_id

    def housekeeping(self, now: float) -> None:
        """Heartbeats and the server's polling that fall due in this tick."""
        if now - self.last_beat >= self.settings.heartbeat_interval:
            self.last_beat = now
            for w, main in enumerate(self.mains):
                main.heartbeat(f"celery@worker-{w}", {
                    "hostname": f"celery@worker-{w}", "ts": repr(now), "active": "3",
                    "processed": "1000", "load": "0.5", "rss": "123456789",
                    "concurrency": "8", "queues": "default,high_priority,low_priority"})
        if now >= self.next_poll["kpis"]:
            self.next_poll["kpis"] = now + 2
            self.monitor.get_kpis("1h")
        if now >= self.next_poll["health"]:
            self.next_poll["health"] = now + 5
            self.monitor.get_worker_health()
        for task_id in random.sample(self.task_ids, min(3, len(self.task_ids))):
            self.monitor.get_task_status(task_id)

    def close(self) -> None:
        """Stop every recorder (their threads start on the first record) while Redis is up."""
        for r in (*self.producers, *self.children, *self.mains):
            r.stop(timeout=2.0)

    def flush(self) -> int:
        chunks = 0
        for r in (*self.producers, *self.children, *self.mains):
            if r.buffered():
                r.flush()
                chunks += 1
        return chunks


def cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def phase(fleet: Fleet, client: redis.Redis, rate: float, seconds: float,
          first: int) -> dict[str, float]:
    per_tick = rate * TICK
    owed = 0.0
    done = chunks = 0
    start_cpu = cpu(client)
    start = time.monotonic()
    tick = 0
    while time.monotonic() - start < seconds:
        due = start + tick * TICK
        slack = due - time.monotonic()
        if slack > 0:
            time.sleep(slack)
        now = time.time()
        owed += per_tick
        while owed >= 1:
            fleet.task(first + done, now)
            done += 1
            owed -= 1
        fleet.housekeeping(now)
        chunks += fleet.flush()
        tick += 1
    elapsed = time.monotonic() - start
    used = cpu(client) - start_cpu
    return {"target": rate, "achieved": done / elapsed, "tasks": done, "chunks": chunks,
            "redis_cpu": used / elapsed, "cpu_per_task_us": used / max(done, 1) * 1e6}


def fit(rows: list[dict[str, float]]) -> tuple[float, float]:
    """Least squares of Redis CPU share on the achieved rate: (fixed share, seconds per task)."""
    xs = [r["achieved"] for r in rows]
    ys = [r["redis_cpu"] for r in rows]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0
    return my - slope * mx, slope


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=200)
    parser.add_argument("--procs", type=int, default=8)
    parser.add_argument("--producers", type=int, default=50)
    parser.add_argument("--rates", default="500,1000,2000")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    with EmbeddedRedis(tempfile.mkdtemp(prefix="warden-ceiling-"), appendonly=False) as srv:
        settings = load_settings(REDIS_URL=srv.url, WARDEN_KEY_PREFIX="ceiling")
        client = redis.Redis.from_url(srv.url)
        fleet = Fleet(settings, args.workers, args.procs, args.producers)
        phase(fleet, client, rates[0], 3.0, 0)  # warm-up: scripts loaded, connections open
        rows, first = [], 10**7
        for rate in rates:
            row = phase(fleet, client, rate, args.seconds, first)
            first += int(row["tasks"]) + 1
            rows.append(row)
        fleet.close()  # nothing left for the recorders' exit hooks once the server is gone
        memory = int(client.info("memory")["used_memory"])
        client.close()
    print(f"fleet: {args.workers} workers x {args.procs} processes, {args.producers} "
          f"producers; {TICK * 1000:.0f} ms flushes; breaker 20 %, rate limit 10 %, "
          f"idempotent 5 %; a server polling KPIs/2 s, health/5 s, lookups 12/s")
    print(f"{'target/s':>9}{'achieved/s':>12}{'chunks/s':>10}{'Redis CPU':>11}"
          f"{'CPU/task':>11}")
    for r in rows:
        print(f"{r['target']:>9.0f}{r['achieved']:>12.0f}"
              f"{r['chunks'] / args.seconds:>10.0f}{r['redis_cpu']:>10.1%}"
              f"{r['cpu_per_task_us']:>9.1f}us")
    fixed, per_task = fit(rows)
    if per_task > 0:
        ceiling = (1 - fixed) / per_task
        sustained = (0.7 - fixed) / per_task
        print(f"fit: Redis CPU = {fixed:.1%} fixed + {per_task * 1e6:.1f} us per task")
        print(f"ceiling (one core): {ceiling:,.0f} tasks/s ({ceiling * 86400 / 1e6:,.0f} M/day);"
              f" sustainable at 70 %: {sustained:,.0f} tasks/s "
              f"({sustained * 86400 / 1e6:,.0f} M/day)")
    print(f"Redis used_memory at the end: {memory / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
