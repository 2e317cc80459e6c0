#!/usr/bin/env python
"""Where Warden's microseconds go: each handler, the publish path, the flush, the spool.

Everything runs in this one process against an embedded ``redis-server``, timed with
``time.perf_counter`` over ``--calls`` calls, repeated ``--repeat`` times, the *minimum* per call
reported (the least disturbed repeat: on a shared machine the minimum is the stable figure).

* ``publish``: ``task.delay()`` on the in-memory transport, plain vs with ``Warden(app)``
  (installed and uninstalled between repeats): the difference is Warden's cost in a publishing
  process, without the broker round trip that dominates a real ``delay()``.
* ``tracer``: the pool child's per-task path (``build_tracer``: prerun, body, postrun, Celery's
  signal dispatch), plain vs Warden; ``--spool`` also spools every record as workers do.
* ``handler:*``: single handlers called directly with realistic arguments.
* ``flush``: sealing, packing and applying a batch of finished-task records (the flusher
  thread), per record, and Redis's share of it.

    python bench/handlers.py [--calls 5000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from celery import Celery
from celery.app.trace import build_tracer

from celery_warden import Warden, celery_config, load_settings
from celery_warden.embedded import EmbeddedRedis
from celery_warden.record.order import RANK_FINAL
from celery_warden.record.publish import PUBLISHING, Publishing
from celery_warden.record.recorder import Recorder
from celery_warden.record.store import StoreWriter


def best(fn: Callable[[int], None], calls: int, repeat: int,
         between: Callable[[], object] | None = None) -> float:
    """Minimum over ``repeat`` runs of ``fn(calls)``, in µs per call; ``between`` runs before
    each (e.g. empty a recorder's buffer, as its flusher does every 250 ms in production: a
    buffer left to grow makes every allocation pay for the garbage collector's scans)."""
    out = float("inf")
    for _ in range(repeat):
        if between is not None:
            between()
        start = time.perf_counter()
        fn(calls)
        out = min(out, (time.perf_counter() - start) / calls * 1e6)
    return out


def make_app(settings: Any, broker: str | None = None) -> tuple[Celery, Any]:
    app = Celery(f"bench-handlers-{uuid.uuid4().hex[:6]}", set_as_current=True)
    app.conf.update(celery_config(settings))
    if broker:
        app.conf.broker_url = broker

    # shared=False: each arm builds a fresh app; a shared task would reach the next app too
    # (and trip Celery's DuplicateTaskNameWarning there).
    @app.task(name="bench.noop", ignore_result=True, shared=False)
    def noop() -> None:
        return None

    app.finalize()
    return app, noop


def publish_arm(settings: Any, calls: int, repeat: int, results: dict[str, float]) -> None:
    app, noop = make_app(settings, "memory://")
    noop.delay()

    def run(n: int) -> None:
        for _ in range(n):
            noop.delay()

    plain = warden_best = float("inf")
    for _ in range(repeat):
        plain = min(plain, best(run, calls, 1))
        warden = Warden(app, settings)
        run(100)
        warden_best = min(warden_best, best(run, calls, 1))
        warden.recorder.stop()
        warden.uninstall()
    results["publish: delay() on memory://, plain"] = plain
    results["publish: delay() on memory://, warden"] = warden_best
    results["publish: added by Warden"] = warden_best - plain


def tracer_arm(settings: Any, calls: int, repeat: int, results: dict[str, float],
               spool: bool) -> None:
    app, noop = make_app(settings)
    tracer = build_tracer("bench.noop", noop, app=app, eager=False, hostname="bench@local")

    def run(n: int) -> None:
        for _ in range(n):
            tid = str(uuid.uuid4())
            now = time.time()
            request = {"id": tid, "task": "bench.noop", "retries": 0, "hostname": "bench@local",
                       "delivery_info": {"routing_key": "default", "exchange": ""},
                       "warden_sent": now, "warden_received": now, "warden_priority": 5}
            tracer(tid, (), {}, request)

    run(500)
    plain = warden_best = float("inf")
    label = "tracer (pool child per task)" + (", spooling" if spool else "")
    for _ in range(repeat):
        plain = min(plain, best(run, calls, 1))
        warden = Warden(app, settings)
        if spool:
            warden.recorder.enable_spool()
        run(200)
        warden_best = min(warden_best, best(run, calls, 1))
        warden.recorder.stop()
        warden.uninstall()
    results[f"{label}: plain"] = plain
    results[f"{label}: warden"] = warden_best
    results[f"{label}: added by Warden"] = warden_best - plain


def handler_arms(settings: Any, calls: int, repeat: int, results: dict[str, float]) -> None:
    app, _ = make_app(settings)
    warden = Warden(app, settings)
    recorder = warden.recorder
    pub = warden.handlers.publish

    def before(n: int) -> None:
        token = PUBLISHING.set(Publishing(app))
        try:
            for _ in range(n):
                pub.on_before_publish(sender="bench.noop", headers={"id": "x", "task": "t"},
                                      properties={"priority": 5})
        finally:
            PUBLISHING.reset(token)

    def after(n: int) -> None:
        for i in range(n):  # what publish_guard does once send_task_message returned
            slot = Publishing(app)
            slot.headers = {"id": f"p{i}", "task": "bench.noop", "warden_sent": 1.0e9,
                            "retries": 0}
            slot.queue = "default"
            pub.published(slot)

    def lock_only(n: int) -> None:
        lock = recorder._lock
        for _ in range(n):
            with lock:
                pass

    child = warden.handlers.child
    task = app.tasks["bench.noop"]

    ids = [f"c-{i}" for i in range(300)]

    def child_handlers(repeats: int) -> tuple[float, float, float]:
        """(prerun, postrun, take) µs: timed around the handler calls only, best of
        ``repeats`` runs over 300 tasks, each run starting with an empty buffer; ``take`` is the
        flusher's share per task when it takes the buffer (postrun queues a finished task raw,
        the take builds its record, bucket and totals)."""
        pre = post = take = float("inf")
        now = time.time()
        for _ in range(repeats):
            recorder.take()
            t_pre = t_post = 0.0
            for tid in ids:
                task.push_request(id=tid, retries=0, hostname="bench@local",
                                  delivery_info={"routing_key": "default"}, warden_sent=now)
                t0 = time.perf_counter()
                child.on_prerun(task_id=tid, task=task)
                t1 = time.perf_counter()
                child.on_postrun(task_id=tid, task=task, state="SUCCESS")
                t2 = time.perf_counter()
                t_pre += t1 - t0
                t_post += t2 - t1
                task.pop_request()
            t0 = time.perf_counter()
            recorder.take()
            take = min(take, (time.perf_counter() - t0) / len(ids) * 1e6)
            pre = min(pre, t_pre / len(ids) * 1e6)
            post = min(post, t_post / len(ids) * 1e6)
        return pre, post, take

    recorder.stop()  # no flusher thread: each run starts with an empty buffer (``drop``)
    recorder._running = True  # as with a flusher thread running (it is not: nothing is written)

    def drop() -> None:
        recorder.take()

    small, more = min(calls, 300), repeat * 5
    pre, post, take = child_handlers(more)
    results["handler: task_prerun (pool child)"] = pre
    results["handler: task_postrun (pool child: one tuple queued)"] = post
    results["flusher: queued finished task -> record, bucket, totals (per task)"] = take
    recorder._stopping.clear()
    if recorder.enable_spool():
        pre, post, take = child_handlers(more)
        results["handler: task_postrun, spooling (worker processes)"] = post
    recorder._running = False
    recorder._stopping.clear()
    recorder.stop()
    recorder._running = True
    results["handler: before_task_publish"] = best(before, calls, repeat)
    results["after the publish returned (SENT tuple queued)"] = best(
        after, small, more, drop)
    results["one uncontended lock acquisition (reference)"] = best(lock_only, calls, repeat)

    from celery.utils.dispatch import Signal

    sig = Signal(name="bench")

    def send_none(n: int) -> None:
        for _ in range(n):
            sig.send(sender=None)

    def receiver(sender: Any = None, **_: Any) -> None:
        return None

    results["Celery signal send, no receiver"] = best(send_none, calls, repeat)
    sig.connect(receiver, weak=False)
    results["Celery signal send, one receiver (dispatch cost)"] = best(send_none, calls, repeat)
    warden.uninstall()


def flush_arm(settings: Any, calls: int, repeat: int, results: dict[str, float]) -> None:
    recorder = Recorder(settings, writer_factory=lambda: StoreWriter(settings))
    recorder.stop()

    def fill(n: int) -> None:
        now = time.time()
        for i in range(n):
            recorder.task(f"f{i}-{uuid.uuid4().hex[:6]}",
                          static={"name": "bench.noop", "queue": "default"},
                          attempt={"state": "SUCCESS", "finished": now, "runtime": 0.001,
                                   "worker": "bench@local"}, rank=RANK_FINAL)
            recorder.observe("bench.noop", now, "success", 0.001, 0.01)

    def fill_sent(n: int) -> None:
        now = time.time()
        for _ in range(n):
            recorder.sent((uuid.uuid4().hex, "bench.noop", "default", now, "5", None, None, None,
                           0, "bench-host", None))

    for label, filler in (("finished-task record", fill), ("SENT record (publisher)", fill_sent)):
        per = cpu = float("inf")
        for _ in range(repeat):
            filler(calls)
            start, cpu0 = time.perf_counter(), time.process_time()
            assert recorder.flush()
            per = min(per, (time.perf_counter() - start) / calls * 1e6)
            cpu = min(cpu, (time.process_time() - cpu0) / calls * 1e6)
        results[f"flush per {label}: wall (incl. Redis running the script)"] = per
        results[f"flush per {label}: CPU of the flusher thread"] = cpu


def spool_arm(settings: Any, calls: int, repeat: int, results: dict[str, float]) -> None:
    def recorder(spool: bool) -> Recorder:
        r = Recorder(settings)
        r.stop()
        r.restart()
        r._stopping.set()  # no flusher thread: the buffer only grows
        if spool:
            r.enable_spool()
        return r

    plain, spooled = recorder(False), recorder(True)

    def total(r: Recorder) -> Callable[[int], None]:
        def run(n: int) -> None:
            for _ in range(n):
                r.total(("received", "bench.noop", "bench@local", "default", ""))
        return run

    without = best(total(plain), calls, repeat)
    with_spool = best(total(spooled), calls, repeat)
    results["spool: one entry per change (recorder.total, with - without)"] = (
        with_spool - without)
    for r in (plain, spooled):
        r._stopping.clear()
        r.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=5000)
    p.add_argument("--repeat", type=int, default=7)
    opts = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="warden-bench-handlers-"))
    server = EmbeddedRedis(tmp / "redis", appendonly=False)
    url = server.start()
    try:
        settings = load_settings(REDIS_URL=url, WARDEN_KEY_PREFIX="bench-handlers",
                                 WARDEN_FLUSH_INTERVAL=5, WARDEN_BUFFER_SIZE=10_000_000,
                                 WARDEN_SPOOL_DIR=str(tmp / "spool"))
        results: dict[str, float] = {}
        publish_arm(settings, opts.calls, opts.repeat, results)
        tracer_arm(settings, opts.calls, opts.repeat, results, spool=False)
        tracer_arm(settings, opts.calls, opts.repeat, results, spool=True)
        handler_arms(settings, opts.calls, opts.repeat, results)
        flush_arm(settings, opts.calls, opts.repeat, results)
        spool_arm(settings, opts.calls, opts.repeat, results)
    finally:
        server.stop()
    print(f"{opts.calls} calls x {opts.repeat} repeats, minimum per call")
    width = max(len(k) for k in results)
    for k, v in results.items():
        print(f"{k:<{width}}  {v:8.2f} µs")


if __name__ == "__main__":
    main()
