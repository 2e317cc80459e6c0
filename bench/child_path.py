#!/usr/bin/env python
"""What a prefork pool child spends per task, plain vs Warden, split by thread (CPU, not wall).

Why this exists: ``overhead.py`` measures whole workers, whose CPU per task swings by ±30 % on
a shared machine, and ``handlers.py`` times each handler in a hot loop, which misses what the
handlers cost on a real child's path (cold caches, the flusher thread, the spool, garbage
collection of buffered records). This runs a pool child's exact per-task call —
``celery.app.trace.fast_trace_task`` on the request dict the worker's main process builds from
the message — in a child set up as the prefork pool does (``setup_worker_optimizations``,
``worker_process_init``: Warden's spool on), paced at a real child's rate so each flush carries
a realistic batch, with Warden's flusher thread running at its default interval against an
embedded ``redis-server``. Each arm runs in a fresh process; arms alternate; CPU is read per
thread from ``/proc`` (the task thread and Warden's flusher apart), so other load on the machine
inflates both arms alike instead of adding noise to a wall clock.

    python bench/child_path.py [--tasks 5000] [--rounds 5] [--rate 700] [--env K=V ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def child(tasks: int, rate: float) -> dict[str, float]:
    """One arm, in this process (``BENCH_WARDEN`` chooses it, as for ``bench.apps``)."""
    import psutil
    from celery import signals
    from celery.app.trace import build_tracer, fast_trace_task, setup_worker_optimizations

    sys.path.insert(0, str(ROOT))
    from bench import apps

    hostname = "child-path@localhost"
    setup_worker_optimizations(apps.app, hostname)
    # What prefork's process_initializer does: every task's tracer, then worker_process_init
    # (Warden's tracer hook wraps them there).
    for name, t in apps.app.tasks.items():
        t.__trace__ = build_tracer(name, t, apps.app.loader, hostname, app=apps.app)
    signals.worker_process_init.send(sender=hostname)
    warden = apps.warden
    # The message as the publisher builds it (Warden's publish handlers stamp their headers).
    with apps.app.producer_or_acquire() as producer:
        captured: dict[str, Any] = {}

        def grab(sender: Any = None, headers: Any = None, properties: Any = None,
                 **_: Any) -> None:
            captured["headers"] = dict(headers)
            captured["properties"] = dict(properties)

        signals.before_task_publish.connect(grab, weak=False)
        apps.noop.apply_async(producer=producer)
        signals.before_task_publish.disconnect(grab)
    headers, properties = captured["headers"], captured["properties"]
    body = json.dumps([[], {}, {"callbacks": None, "errbacks": None, "chain": None,
                                "chord": None}])
    delivery = {"exchange": "", "routing_key": "default", "priority": 5, "redelivered": False}
    proc = psutil.Process()
    pid = os.getpid()

    def threads() -> dict[int, float]:
        return {t.id: t.user_time + t.system_time for t in proc.threads()}

    def one() -> None:
        tid = str(uuid.uuid4())
        rd = dict(headers, id=tid, root_id=tid)
        rd.update({"properties": properties, "reply_to": properties.get("reply_to"),
                   "correlation_id": tid, "hostname": hostname, "delivery_info": delivery})
        if warden is not None:  # what Warden's task_received handler adds in the main process
            rd["warden_received"] = time.time()
        fast_trace_task("bench.noop", tid, rd, body, "application/json", "utf-8")

    fprof = None
    if warden is not None and os.environ.get("BENCH_CPROFILE_FLUSH"):  # the flusher thread
        import cProfile

        fprof = cProfile.Profile(time.thread_time)
        flush = warden.recorder.flush

        def profiled_flush() -> bool:
            fprof.enable()  # type: ignore[union-attr]
            try:
                return flush()
            finally:
                fprof.disable()  # type: ignore[union-attr]

        warden.recorder.flush = profiled_flush  # type: ignore[method-assign]
    import gc

    gc_time = [0.0, 0.0, 0.0]
    gc_runs = [0, 0, 0]
    gc_start = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_start[0] = time.thread_time()
        else:
            gc_time[info["generation"]] += time.thread_time() - gc_start[0]
            gc_runs[info["generation"]] += 1

    gc.callbacks.append(on_gc)
    for _ in range(200):  # warm-up: imports, the flusher thread and its connection
        one()
    time.sleep(0.3)
    before, cpu0, wall0 = threads(), time.process_time(), time.perf_counter()
    gc_time[:] = [0.0, 0.0, 0.0]
    gc_runs[:] = [0, 0, 0]
    gap = 1.0 / rate
    prof = None
    if os.environ.get("BENCH_CPROFILE"):  # the task thread only (cProfile is per thread)
        import cProfile

        prof = cProfile.Profile(time.thread_time)
        prof.enable()
    next_at = time.perf_counter()
    for _ in range(tasks):
        one()
        next_at += gap
        pause = next_at - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    if prof is not None:
        prof.disable()
        prof.dump_stats(os.environ["BENCH_CPROFILE"])
    if warden is not None:
        warden.recorder.flush()  # the flush of the last tasks is theirs too
    if fprof is not None:
        fprof.dump_stats(os.environ["BENCH_CPROFILE_FLUSH"])
    after, cpu1, wall1 = threads(), time.process_time(), time.perf_counter()
    task_thread = (after.get(pid, 0.0) - before.get(pid, 0.0)) / tasks * 1e6
    total = (cpu1 - cpu0) / tasks * 1e6
    return {"process_us": total, "task_thread_us": task_thread,
            "other_threads_us": total - task_thread,
            "achieved_rate": tasks / (wall1 - wall0),
            **{f"gc{g}_us": gc_time[g] / tasks * 1e6 for g in range(3)},
            **{f"gc{g}_runs": float(gc_runs[g]) for g in range(3)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=700.0,
                        help="tasks/s of one child (a 2-process worker at ~1,400 tasks/s)")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE, both arms")
    parser.add_argument("--arms", default="plain,warden")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child:
        print(json.dumps(child(opts.tasks, opts.rate)), flush=True)
        return
    sys.path.insert(0, str(ROOT))
    from bench.arms import arm_env
    from celery_warden.embedded import EmbeddedRedis

    server = EmbeddedRedis(tempfile.mkdtemp(prefix="warden-bench-child-"), appendonly=False)
    url = server.start()
    spool = tempfile.mkdtemp(prefix="warden-bench-child-spool-")
    results: dict[str, list[dict[str, float]]] = {}
    arms = opts.arms.split(",")
    try:
        for r in range(opts.rounds):
            for spec in arms:
                env = arm_env(spec, url, {"WARDEN_KEY_PREFIX": "bench-child",
                                          "WARDEN_SPOOL_DIR": spool}, opts.env)
                out = subprocess.run(
                    [sys.executable, __file__, "--child", spec, "--tasks", str(opts.tasks),
                     "--rate", str(opts.rate)], env=env, cwd=ROOT, capture_output=True,
                    text=True, check=False)
                if out.returncode:
                    raise SystemExit(out.stderr[-3000:])
                res = json.loads(out.stdout.strip().splitlines()[-1])
                results.setdefault(spec, []).append(res)
                print(f"round {r + 1} {spec:40s} " + "  ".join(
                    f"{k} {v:8.1f}" for k, v in res.items()), flush=True)
    finally:
        server.stop()
    print(f"\nmedian of {opts.rounds} rounds, µs per task ({opts.tasks} tasks at "
          f"{opts.rate:.0f}/s per round):")
    print(f"{'arm':40s} {'process':>8s} {'task thread':>12s} {'other threads':>14s}")
    for spec, rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(f"{spec:40s} {med['process_us']:8.1f} {med['task_thread_us']:12.1f} "
              f"{med['other_threads_us']:14.1f}")


if __name__ == "__main__":
    main()
