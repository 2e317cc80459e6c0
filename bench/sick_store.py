#!/usr/bin/env python
"""A sick store never slows a task: latency figures with Warden's store healthy, black-holed,
refusing connections and slow (200 ms per command), while the broker stays healthy.

One embedded ``redis-server`` is broker and result backend; Warden's store is the same server
behind a loopback proxy (``bench/storeproxy.py``) whose mode is switched once the worker
(``bench/sick_app.py``, prefork, concurrency 2) is ready. Per mode:

* no-op latency: ``--noops`` tasks published at once, publish → the task's own finish time
  (same clock), p50 / p99;
* final-failure cost: ``--failures`` base-class tasks that fail for good (their DLQ entry is
  written on the task's path), one at a time, publish → result ready, median / max;
* DLQ delivery: after the store is healthy again, seconds until every entry is in the DLQ;
* SIGTERM: seconds from SIGTERM to the worker's exit, the store still sick.

    python bench/sick_store.py [--noops 1000] [--failures 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from celery import Celery

from bench.storeproxy import StoreProxy
from celery_warden import celery_config, load_settings
from celery_warden.dlq.store import DeadLetterQueue
from celery_warden.embedded import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent
MODES = ("pass", "blackhole", "refuse", "slow")


def run_mode(mode: str, url: str, tmp: Path, noops: int, failures: int) -> dict[str, float]:
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    prefix = f"sick{uuid.uuid4().hex[:6]}"
    with StoreProxy("127.0.0.1", port) as proxy:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("WARDEN_", "CELERY_")) and k != "REDIS_URL"}
        env.update({"PYTHONPATH": str(ROOT), "REDIS_URL": proxy.url, "CELERY_BROKER_URL": url,
                    "CELERY_RESULT_BACKEND": url, "WARDEN_KEY_PREFIX": prefix,
                    "WARDEN_QUEUE_PREFIX": f"{prefix}.", "WARDEN_SPOOL_DIR": str(tmp / prefix)})
        settings = load_settings(REDIS_URL=url, WARDEN_KEY_PREFIX=prefix,
                                 WARDEN_QUEUE_PREFIX=f"{prefix}.")
        client = Celery("sick-client", set_as_current=False)
        client.conf.update(celery_config(settings))
        log = tmp / f"{prefix}.log"
        with open(log, "wb") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "bench.sick_app", "worker",
                 "--concurrency=2", "--pool=prefork", f"--queues={prefix}.default",
                 "--without-gossip", "--without-mingle", "--loglevel=INFO",
                 f"--hostname=sick-{prefix}@localhost"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 90
            while " ready." not in log.read_text(errors="replace"):
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"worker did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.1)
            client.send_task("sick.noop").get(timeout=30)
            proxy.set_mode(mode)
            sent_at = []
            results = []
            for _ in range(noops):
                sent_at.append(time.time())
                results.append(client.send_task("sick.noop"))
            lat = sorted((r.get(timeout=120) - t) * 1000 for r, t in zip(results, sent_at,
                                                                        strict=True))
            costs, ids = [], []
            for i in range(failures):
                start = time.perf_counter()
                r = client.send_task("sick.fail", (i,))
                r.get(timeout=60, propagate=False)
                costs.append((time.perf_counter() - start) * 1000)
                ids.append(r.id)
            proxy.set_mode("pass")
            dlq = DeadLetterQueue(settings, app=client)
            start = time.perf_counter()
            while not all(dlq.get(i) is not None for i in ids):
                if time.perf_counter() - start > 120:
                    break
                time.sleep(0.1)
            delivered = sum(dlq.get(i) is not None for i in ids)
            delivery = time.perf_counter() - start
            proxy.set_mode(mode)
            start = time.perf_counter()
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
            exit_s = time.perf_counter() - start
        finally:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(10)
            client.close()
    return {"noop_p50_ms": statistics.median(lat), "noop_p99_ms": lat[int(len(lat) * 0.99) - 1],
            "fail_median_ms": statistics.median(costs), "fail_max_ms": max(costs),
            "dlq_delivered": delivered, "dlq_delivery_s": delivery, "sigterm_exit_s": exit_s}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--noops", type=int, default=1000)
    p.add_argument("--failures", type=int, default=20)
    opts = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="warden-bench-sick-"))
    server = EmbeddedRedis(tmp / "redis", appendonly=False)
    url = server.start()
    rows = {}
    try:
        for mode in MODES:
            rows[mode] = run_mode(mode, url, tmp, opts.noops, opts.failures)
            print(f"{mode:9} done", flush=True)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    base = rows["pass"]
    print(f"{opts.noops} no-ops, {opts.failures} final failures per mode (store behind a "
          "loopback proxy; broker healthy)")
    print(f"{'store':10}{'noop p50':>10}{'noop p99':>10}{'Δp99':>8}{'fail med':>10}"
          f"{'Δfail':>8}{'fail max':>10}{'DLQ in':>8}{'after':>8}{'SIGTERM':>9}{'Δexit':>8}")
    for mode, r in rows.items():
        print(f"{'healthy' if mode == 'pass' else mode:10}{r['noop_p50_ms']:10.1f}"
              f"{r['noop_p99_ms']:10.1f}{r['noop_p99_ms'] - base['noop_p99_ms']:8.1f}"
              f"{r['fail_median_ms']:10.1f}{r['fail_median_ms'] - base['fail_median_ms']:8.1f}"
              f"{r['fail_max_ms']:10.1f}{int(r['dlq_delivered']):>5}/{opts.failures:<2}"
              f"{r['dlq_delivery_s']:7.1f}s{r['sigterm_exit_s']:8.2f}s"
              f"{r['sigterm_exit_s'] - base['sigterm_exit_s']:7.2f}s")
    print("targets: Δp99 < 50 ms, Δfail < 250 ms, every DLQ entry delivered, Δexit < 1 s")


if __name__ == "__main__":
    main()
