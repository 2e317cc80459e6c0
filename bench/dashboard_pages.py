"""Dashboard page load times and live-update latency, measured in a real browser.

    .venv/bin/python bench/dashboard_pages.py                  # 1,000,000 records, 500 names
    .venv/bin/python bench/dashboard_pages.py --tasks 100000 --runs 3
    .venv/bin/python bench/dashboard_pages.py --json out.json

Method:

1. Its own embedded ``redis-server`` (never the shared 6379), filled with ``--tasks`` finished
   task records through the real write path (:mod:`bench.store_fill`: recorder buffer → flush
   script) for ``--names`` task names; then one real ``warden serve`` and one real Warden worker
   (``bench.apps``, ``bench.noop``) on it.
2. Debian's Chromium (Playwright), signed in with a ``read`` token. For each page, ``--runs``
   navigations; a load time is the page's own ``performance.mark('warden:rendered')`` (set by
   ``main.js`` once the page module's first render, with its data, is in the DOM), in ms from
   the navigation's start: HTML, CSS, ES modules, the session check and every API call included.
3. Live updates: with the Tasks page (and then the overview) open, ``--live`` tasks are sent one
   at a time; latency = the moment the browser's DOM shows the task finished (a
   ``MutationObserver`` on the row's ``data-state``; on the overview, the "Tasks finished" tile's
   text) minus the task's ``finished_at`` in its record. One machine, so one clock.

Targets from the issue: overview < 500 ms, list pages < 300 ms, live update < 1 s.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
# This checkout's package first (so a copy of the tree measures its own dashboard files).
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402

from celery_warden.embedded import EmbeddedRedis, free_port  # noqa: E402
from celery_warden.keys import Keys  # noqa: E402
from celery_warden.serve.tokens import Scope, TokenStore  # noqa: E402
from celery_warden.settings import load_settings  # noqa: E402

PREFIX = "dashbench"
CHROMIUM = os.environ.get("WARDEN_CHROMIUM", "/usr/lib/chromium/chromium")
PAGES = ["/", "/tasks", "/tasks?state=FAILURE", "/task-types", "/queues", "/workers", "/dlq",
         "/errors", "/breakers", "/alerts"]
TARGETS = {"/": 500.0, "/ (KPI tiles)": 500.0, "/tasks?state=FAILURE": 300.0}
LIST_TARGET = 300.0
LIVE_TARGET = 1.0
#: Milliseconds a live update is waited for before it counts as missed (inf).
LIVE_WAIT = 30_000


def env_for(url: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items()
               if not k.startswith(("WARDEN_", "CELERY_", "REDIS_"))},
            "REDIS_URL": url, "WARDEN_KEY_PREFIX": PREFIX, "WARDEN_SERVE_ALERTS": "false",
            "WARDEN_LOG_LEVEL": "WARNING", "WARDEN_FLUSH_INTERVAL": "0.1",
            "BENCH_WARDEN": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}


def fill_store(url: str, tasks: int, names: int) -> float:
    try:
        from bench.store_fill import Shape, fill
    except ImportError as exc:  # pragma: no cover - the filler ships with bench/serve_api.py
        raise SystemExit(f"bench/store_fill.py is needed to fill the store ({exc})") from exc
    from celery_warden.record import store
    from celery_warden.services import redis_client

    # The harness's writes may wait out a loaded machine (Warden's own clients keep their short
    # timeouts: what is measured is the server, not the filler).
    store.redis_client = functools.partial(redis_client, timeout=300.0)  # type: ignore[assignment]
    settings = load_settings(REDIS_URL=url, WARDEN_KEY_PREFIX=PREFIX)
    result = fill(settings, tasks, Shape(names=names), progress=True)
    return float(result["seconds"])  # type: ignore[arg-type]


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "wb")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"warden serve exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/login", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("warden serve did not answer")


def measure_pages(page: Any, base: str, paths: list[str], runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    kpis: list[float] = []
    for path in paths:
        times = []
        for _ in range(runs):
            page.goto(base + path)
            page.wait_for_selector("body[data-rendered='true']", timeout=60_000)
            times.append(float(page.evaluate(
                "performance.getEntriesByName('warden:rendered')[0].startTime")))
            if path == "/":  # the KPI tiles, which wait for /api/v1/kpis, separately
                page.wait_for_function(
                    "() => performance.getEntriesByName('warden:kpis').length > 0",
                    timeout=120_000)
                kpis.append(float(page.evaluate(
                    "performance.getEntriesByName('warden:kpis')[0].startTime")))
        out[path] = times
    if kpis:
        out["/ (KPI tiles)"] = kpis
    return out


OBSERVE_ROWS = """() => { window.__seen = {};
  new MutationObserver(() => {
    for (const tr of document.querySelectorAll('tr[data-task][data-state="SUCCESS"]')) {
      if (!(tr.dataset.task in window.__seen)) window.__seen[tr.dataset.task] = Date.now();
    }
  }).observe(document.getElementById('content'), {subtree: true, childList: true,
     attributes: true, attributeFilter: ['data-state']}); }"""
OBSERVE_TILE = """() => { window.__changes = [];
  const el = document.querySelector('#kpi-finished .tile-value');
  new MutationObserver(() => window.__changes.push([Date.now(), el.textContent]))
    .observe(el, {subtree: true, childList: true, characterData: true}); }"""


def live_latency(page: Any, base: str, client: httpx.Client, publisher: Any,
                 count: int) -> dict[str, list[float]]:
    """Seconds from a task's finish (its record) to the DOM showing it: Tasks row, overview."""
    rows: list[float] = []
    page.goto(f"{base}/tasks")
    page.wait_for_selector("body[data-rendered='true']")
    page.wait_for_selector("#live[data-state='live']", timeout=30_000)
    page.evaluate(OBSERVE_ROWS)
    finished: dict[str, float] = {}
    for _ in range(count):
        tid = publisher.send_task("bench.noop").id
        finished[tid] = wait_finished(client, tid)
        try:
            page.wait_for_function("(id) => id in window.__seen", arg=tid, timeout=LIVE_WAIT)
            rows.append(page.evaluate("(id) => window.__seen[id]", tid) / 1000.0 - finished[tid])
        except PlaywrightTimeout:
            rows.append(float("inf"))
        time.sleep(0.5)
    tiles: list[float] = []
    page.goto(f"{base}/?window=15m")
    page.wait_for_selector("body[data-rendered='true']")
    page.wait_for_selector("#live[data-state='live']", timeout=30_000)
    time.sleep(3)  # let the first kpis event settle
    for _ in range(count):
        before = page.locator("#kpi-finished .tile-value").inner_text()
        page.evaluate(OBSERVE_TILE)
        tid = publisher.send_task("bench.noop").id
        done = wait_finished(client, tid)
        try:
            page.wait_for_function(
                "(b) => window.__changes.some(([, text]) => text !== b)", arg=before,
                timeout=LIVE_WAIT)
        except PlaywrightTimeout:
            tiles.append(float("inf"))
            continue
        first = page.evaluate("(b) => window.__changes.find(([, t]) => t !== b)[0]", before)
        tiles.append(first / 1000.0 - done)
        time.sleep(1.0)
    return {"tasks_row": rows, "overview_counter": tiles}


def wait_finished(client: httpx.Client, tid: str) -> float:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = client.get(f"/api/v1/tasks/{tid}")
        if r.status_code == 200 and r.json().get("state") == "SUCCESS":
            finished = r.json().get("finished_at")
            return httpx_iso(finished)
        time.sleep(0.02)
    raise SystemExit(f"task {tid} did not finish")


def httpx_iso(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def print_loads(loads: dict[str, list[float]]) -> None:
    print(f"{'page':34} {'median ms':>10} {'max ms':>8}  target", flush=True)
    for p, times in loads.items():
        s = summary(times)
        target = TARGETS.get(p, LIST_TARGET if p.startswith("/") and "/" not in p[1:]
                             and " " not in p else None)
        goal = f"< {target:g}" if target else ""
        print(f"{p[:34]:34} {s['median']:>10} {s['max']:>8}  {goal}", flush=True)


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": round(statistics.median(ordered), 1 if ordered[0] > 5 else 3),
            "max": round(ordered[-1], 1 if ordered[0] > 5 else 3), "n": len(ordered)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--names", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--live", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--redis-url", help="measure on this store instead of a fresh embedded "
                        "one (with --tasks 0: as it is, e.g. filled by an earlier run)")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    workdir = Path(tempfile.mkdtemp(prefix="warden-dashbench-"))
    atexit.register(shutil.rmtree, workdir, True)
    procs: list[subprocess.Popen[bytes]] = []
    with contextlib.ExitStack() as stack:
        url = args.redis_url or stack.enter_context(
            EmbeddedRedis(str(workdir / "redis"), appendonly=False)).url
        fill_s = fill_store(url, args.tasks, args.names) if args.tasks else 0.0
        client_r = redis.Redis.from_url(url, decode_responses=True)
        token = TokenStore(client_r, Keys(PREFIX)).create("dashbench", Scope.READ)[0]
        client_r.close()
        env = env_for(url)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        try:
            procs.append(start([sys.executable, "-m", "celery", "-A", "bench.apps", "warden",
                                "serve", "--port", str(port)], env, workdir / "serve.log"))
            procs.append(start([sys.executable, "-m", "celery", "-A", "bench.apps", "worker",
                                "-c", "2", "--without-gossip", "--without-mingle",
                                "--loglevel=WARNING", "-n", "dashbench@%h"], env,
                               workdir / "worker.log"))
            wait_http(base, procs[0])
            os.environ.update({k: v for k, v in env.items()
                               if k.startswith(("REDIS_", "WARDEN_", "BENCH_"))})
            from bench.apps import app as publisher  # configured from the environment above

            http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                                timeout=30)
            any_id = http.get("/api/v1/tasks", params={"limit": 1}).json()["items"]
            paths = PAGES + ([f"/tasks/{any_id[0]['task_id']}"] if any_id else [])
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(f"{base}/login")
                page.fill("#token", token)
                page.click("#login-form button")
                page.wait_for_url(f"{base}/")
                measure_pages(page, base, ["/"], 1)  # warm: imports compiled, server caches
                loads = measure_pages(page, base, paths, args.runs)
                print_loads(loads)
                live = live_latency(page, base, http, publisher, args.live)
                browser.close()
            http.close()
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
    report = {"tasks": args.tasks, "names": args.names, "fill_seconds": round(fill_s, 1),
              "page_load_ms": {p: summary(v) for p, v in loads.items()},
              "live_seconds": {k: summary(v) for k, v in live.items()}}
    if args.tasks:
        print(f"records: {args.tasks:,} ({args.names} task names), filled in {fill_s:.0f} s")
    else:
        print(f"records: as found in {args.redis_url}")
    for k, s in report["live_seconds"].items():  # type: ignore[attr-defined]
        print(f"live update ({k}): median {s['median']} s, max {s['max']} s  "
              f"(target < {LIVE_TARGET} s)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
