"""Fill a store with N task records fast, through the real write path (bench/serve_api.py).

Every record, metric bucket and cumulative total is written the way a fleet writes them: the
recorder's buffer (``TaskBuffer.begin`` / ``end`` / ``total``, as a pool child and the worker's
main process call them) is filled in memory, taken as a batch every :data:`BATCH` tasks and
applied by ``StoreWriter`` — the flush script, 200 records per call — so the keys, their layout
and their memory are exactly a real fleet's. What is synthetic is only the workload: ``names`` x
``queues`` x ``hosts`` label sets, ~90 % SUCCESS, ~7 % FAILURE, ~3 % RETRY, runtimes and queue
waits drawn from log-normal distributions, all within the last ``spread`` seconds (so the 1 h
windows the API reads are full).
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass

from celery_warden.record.order import RANK_FINAL, RANK_RETRY
from celery_warden.record.running import TaskBuffer
from celery_warden.record.store import StoreWriter
from celery_warden.services import redis_client
from celery_warden.settings import WardenSettings

#: Tasks buffered before one batch is written (the store splits it into 200-record calls).
BATCH = 5000
ERRORS = ("ValueError", "TimeoutError", "ConnectionError")


@dataclass(frozen=True, slots=True)
class Shape:
    """The synthetic fleet: how many task names, queues and worker hosts."""

    names: int = 200
    queues: int = 3
    hosts: int = 5

    def name(self, i: int) -> str:
        return f"bench.task_{i % self.names:03d}"

    def queue(self, i: int) -> str:
        return ("default", "high_priority", "low_priority", *(
            f"q{k}" for k in range(3, self.queues)))[(i // self.names) % self.queues]

    def host(self, i: int) -> str:
        return f"celery@bench-host-{(i // (self.names * self.queues)) % self.hosts}"


class BenchRun:
    """What a pool child hands the recorder for one execution (``record.child.Run``'s
    protocol, ``record.running.Running``), without a Celery request behind it."""

    __slots__ = ("attempt", "counts_received", "defers", "flushed", "name", "queue", "retries",
                 "static", "wait", "worker")

    def __init__(self, name: str, worker: str, queue: str, wait: float,
                 static: dict[str, object], attempt: dict[str, object]) -> None:
        self.name, self.worker, self.queue, self.wait = name, worker, queue, wait
        self.static, self.attempt = static, attempt
        self.flushed, self.retries, self.defers = False, 0, 0
        self.counts_received = True  # the receipt is counted with the end, as a worker's is

    def start_fields(self) -> tuple[dict[str, object], dict[str, object], int, int]:
        return self.static, self.attempt, 0, 0

    def facts(self) -> tuple[object, ...]:
        return (self.name, self.worker, self.queue, self.wait, self.static, self.attempt)


def task_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def fill(settings: WardenSettings, count: int, shape: Shape = Shape(), spread: float = 3000.0,
         seed: int = 7, progress: bool = True) -> dict[str, object]:
    """Write ``count`` finished task records; returns ids to look up and the time it took."""
    rng = random.Random(seed)
    # A generous timeout: on a busy machine one 200-record script call can take seconds.
    writer = StoreWriter(settings, redis_client(settings.redis_url, timeout=120.0))
    buf = TaskBuffer(settings)
    now = time.time()
    sample: list[str] = []
    failed = 0
    started = time.perf_counter()
    for i in range(count):
        tid = task_id(rng)
        if len(sample) < 100_000 and rng.random() < 0.2:
            sample.append(tid)
        name, queue, host = shape.name(i), shape.queue(i), shape.host(i)
        sent = now - rng.random() * spread
        wait = rng.lognormvariate(-3.0, 1.0)
        runtime = rng.lognormvariate(-2.5, 1.2)
        begun = sent + wait
        roll = rng.random()
        state = "SUCCESS" if roll < 0.90 else "FAILURE" if roll < 0.97 else "RETRY"
        run = BenchRun(name, host, queue, wait, {
            "name": name, "queue": queue, "sent": sent, "args": "[1, 2]", "kwargs": "{}",
        }, {"state": "STARTED", "worker": host, "received": sent + wait / 2, "started": begun,
            "wait": wait})
        final: dict[str, object] = {"state": state, "finished": begun + runtime,
                                    "runtime": runtime}
        if state != "SUCCESS":
            exc = ERRORS[i % len(ERRORS)]
            final["exc_type"] = exc
            final["exc_msg"] = f"{exc.lower()} talking to upstream #{i % 50}"
            failed += state == "FAILURE"
        buf.total(("sent", name, "client-host", queue, ""))
        buf.begin(tid, run)
        outcome = {"SUCCESS": "success", "FAILURE": "failure", "RETRY": "retry"}[state]
        rank = RANK_RETRY if state == "RETRY" else RANK_FINAL
        buf.end(tid, run, name, final, rank, outcome, begun + runtime, runtime, wait)
        if (i + 1) % BATCH == 0 or i + 1 == count:
            batch = buf.take()[0]
            writer.write(batch)
            if progress and (i + 1) % 100_000 == 0:
                rate = (i + 1) / (time.perf_counter() - started)
                print(f"  filled {i + 1:,} records ({rate:,.0f}/s)", flush=True)
    writer.client.close()
    return {"ids": sample, "seconds": time.perf_counter() - started, "failed": failed,
            "names": [shape.name(i) for i in range(shape.names)]}


__all__ = ["Shape", "fill"]
