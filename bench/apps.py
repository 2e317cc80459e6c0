"""The Celery app both benchmark arms run, configured entirely from the environment.

Why one module for both arms: the plain arm and the Warden arm must differ in exactly one thing,
whether ``Warden(app, settings)`` was called. Everything else (``celery_config(settings)``:
``acks_late``, prefetch 1, the Redis priority lanes, JSON, routing to ``<prefix>default``) is
identical because it comes from the same code path. ``BENCH_WARDEN=1`` selects the Warden arm.

Run as ``python -m bench.apps publish N`` it is the publisher: it enqueues ``N`` no-op tasks and
prints one JSON line with how long that took (``delay N``: the same with ``N`` plain ``delay()``
calls, the publisher arm of ``bench/overhead.py``). Each arm publishes from a fresh process of
its own, like a real client of that app would: Celery's publish signals are process-global
(their sender is only the task name), so sharing one process between a plain and a Warden app
would blur the arms.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

from celery import Celery

from celery_warden import BaseTask, Warden, celery_config, load_settings

WARDEN = os.environ.get("BENCH_WARDEN") == "1"

settings = load_settings()
app = Celery("bench")
app.conf.update(celery_config(settings))
warden: Warden | None = Warden(app, settings) if WARDEN else None


BASE_TASK = os.environ.get("BENCH_BASE_TASK") == "1"
_options: dict[str, object] = {"base": BaseTask} if BASE_TASK else {}
if os.environ.get("BENCH_PLAIN_LIMITS") == "1":  # same limits as BaseTask, on a plain task
    _options.update(soft_time_limit=BaseTask.soft_time_limit, time_limit=BaseTask.time_limit)


#: ``BENCH_TASK_CPU_MS``: the task spins this long (CPU, not sleep) — Warden's cost against a
#: task that does some work, not only against Celery's own per-task cost. Both arms alike.
SPIN = float(os.environ.get("BENCH_TASK_CPU_MS") or 0) / 1000


@app.task(name="bench.noop", ignore_result=True, **_options)
def noop() -> None:
    """A true no-op: no result stored, so only Celery's own work (and Warden's) is measured;
    with ``BENCH_TASK_CPU_MS``, a task that computes for that long."""
    if SPIN:
        until = time.perf_counter() + SPIN
        while time.perf_counter() < until:
            pass
    return None


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def publish(count: int) -> dict[str, float]:
    """Enqueue ``count`` no-op tasks over one producer connection; flush Warden's SENT records.

    The Warden flush is part of the measured time: it is work the publisher does because of
    Warden, and the drain that follows must find every SENT record already in Redis.
    """
    start, cpu0 = time.perf_counter(), _cpu_seconds()
    with app.producer_or_acquire() as producer:
        for _ in range(count):
            noop.apply_async(producer=producer)
    if warden is not None:
        warden.recorder.stop()
        warden.recorder.restart()
    return {"seconds": time.perf_counter() - start, "cpu": _cpu_seconds() - cpu0}


def delay(count: int) -> dict[str, float]:
    """The publisher arm: ``count`` plain ``delay()`` calls, as a web app makes them (each
    takes a producer from the pool). The loop is the publisher's rate; Warden's final flush of
    what is still buffered is timed apart (a long-lived publisher does it in the background)."""
    start, cpu0 = time.perf_counter(), _cpu_seconds()
    for _ in range(count):
        noop.delay()
    loop, cpu = time.perf_counter() - start, _cpu_seconds() - cpu0
    start, cpu0 = time.perf_counter(), _cpu_seconds()
    if warden is not None:
        warden.recorder.stop()
        warden.recorder.restart()
    return {"seconds": loop, "cpu": cpu, "flush_seconds": time.perf_counter() - start,
            "flush_cpu": _cpu_seconds() - cpu0}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("publish", "delay"):
        print("usage: python -m bench.apps publish|delay N", file=sys.stderr)
        return 2
    result = (publish if argv[0] == "publish" else delay)(int(argv[1]))
    if warden is not None:
        result["warden_dropped"] = warden.recorder.dropped
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
