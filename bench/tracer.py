"""Per-task cost of Warden's handlers inside Celery's tracer (what a pool child runs per task).

Side by side in one process: the same no-op task traced by ``build_tracer`` (the function a
prefork child calls for every message) with and without ``Warden(app)``, alternating arms by
installing and uninstalling Warden, best of several runs per arm. The store is an embedded
``redis-server`` (or ``--redis-url``); the flusher is slowed down (``WARDEN_FLUSH_INTERVAL=5``)
so the figure is the handlers' cost on the task's path, not the flush (``bench/overhead.py``
measures the whole worker, flush included).

    python bench/tracer.py [--tasks 10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from celery import Celery
from celery.app.trace import build_tracer

from celery_warden import Warden, celery_config, load_settings
from celery_warden.embedded import EmbeddedRedis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--redis-url")
    opts = parser.parse_args()
    server = None
    url = opts.redis_url
    if not url:
        server = EmbeddedRedis(tempfile.mkdtemp(prefix="warden-bench-tracer-"), appendonly=False)
        url = server.start()
    try:
        run(url, opts.tasks, opts.rounds)
    finally:
        if server is not None:
            server.stop()


def run(url: str, tasks: int, rounds: int) -> None:
    settings = load_settings(REDIS_URL=url, WARDEN_KEY_PREFIX="bench-tracer",
                             WARDEN_FLUSH_INTERVAL=5, WARDEN_BUFFER_SIZE=10_000_000)
    app = Celery("bench-tracer", set_as_current=True)
    app.conf.update(celery_config(settings))

    @app.task(name="bench.noop", ignore_result=True)
    def noop() -> None:
        return None

    app.finalize()
    tracer = build_tracer("bench.noop", noop, app=app, eager=False, hostname="bench@local")

    def drain(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            tid = str(uuid.uuid4())
            now = time.time()
            request = {"id": tid, "task": "bench.noop", "retries": 0, "hostname": "bench@local",
                       "delivery_info": {"routing_key": "default", "exchange": ""},
                       "warden_sent": now, "warden_received": now, "warden_priority": 5}
            tracer(tid, (), {}, request)
        return (time.perf_counter() - start) / n * 1e6

    best = {"plain": float("inf"), "warden": float("inf")}
    drain(2000)
    for _ in range(rounds):
        best["plain"] = min(best["plain"], drain(tasks))
        warden = Warden(app, settings)
        drain(200)  # warm the handlers' caches
        best["warden"] = min(best["warden"], drain(tasks))
        warden.uninstall()
    added = best["warden"] - best["plain"]
    print(f"{tasks} no-op tasks x {rounds} rounds per arm, best round each")
    print(f"plain  : {best['plain']:6.1f} us/task in the tracer")
    print(f"warden : {best['warden']:6.1f} us/task in the tracer")
    print(f"added by Warden's handlers: {added:+.1f} us/task "
          f"(of which ~3.5 us per connected signal is Celery's own dispatch)")


if __name__ == "__main__":
    main()
