"""Redis memory after a simulated day of task records, per retention policy.

A day of ``--tasks`` tasks (default 10 million) goes through the real recorder and the real store
(flush.lua, the retention sweep) into a Redis server of its own, with time compressed ``--speed``
times: every TTL, the sweep's grace and its once-a-minute cadence are divided by the same factor,
so the live set at the end is the live set of a real day at that rate. Minute buckets carry the
simulated timestamps (one day of them; the 7-day steady state is printed as well).

The mix: ``--failure`` failed, ``--retry`` retried, ``--slow`` slower than the slow threshold,
the rest plain successes, over ``--names`` task names and 3 queues, written by 16 recorder
instances (one per simulated worker process, each with its writer id and chunk numbering).

    python bench/store_budget.py                      # 10 M tasks, default policy, ~8 min
    python bench/store_budget.py --tasks 1000000 --policy all

Prints the memory by kind, bytes per retained record, and the p50/p99 of looking up a kept record
through ``CeleryMonitor.get_task_status`` (10,000 lookups).
"""

from __future__ import annotations

import argparse
import random
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from celery_warden.embedded import EmbeddedRedis  # noqa: E402
from celery_warden.keys import Keys  # noqa: E402
from celery_warden.read.monitor import CeleryMonitor  # noqa: E402
from celery_warden.record import retention  # noqa: E402
from celery_warden.record.order import RANK_FINAL  # noqa: E402
from celery_warden.record.recorder import Recorder  # noqa: E402
from celery_warden.settings import WardenSettings, load_settings  # noqa: E402

DAY = 86400.0
QUEUES = ("default", "high_priority", "low_priority")
WRITERS = 16
FLUSH_EVERY = 2000


def scaled(settings: WardenSettings, speed: float) -> WardenSettings:
    """The same settings with every retention duration divided by ``speed`` (validation is
    bypassed on purpose: a compressed day needs TTLs below the real minimums)."""
    return settings.model_copy(update={
        "task_ttl": max(1, round(settings.task_ttl / speed)),
        "success_ttl": max(1, round(settings.success_ttl / speed)),
    })


def record(i: int, sim_ts: float, kind: str, names: int) -> tuple[str, dict, dict, int, str]:
    name = f"app.tasks.job_{i % names}"
    wait = 0.002 + (i % 7) * 0.001
    runtime = 30.0 if kind == "slow" else 0.005 + (i % 11) * 0.002
    static = {"name": name, "queue": QUEUES[i % 3], "sent": sim_ts - runtime - wait,
              "priority": "", "args": f"({i}, 'order-{i % 9973}')",
              "kwargs": "{'retry': False, 'source': 'api'}"}
    attempt = {"state": "FAILURE" if kind == "failure" else "SUCCESS",
               "started": sim_ts - runtime, "received": sim_ts - runtime - wait / 2,
               "worker": f"celery@worker-{i % 200}", "pid": 1000 + i % 8, "wait": wait,
               "finished": sim_ts, "runtime": runtime}
    if kind == "failure":
        attempt.update(exc_type="ConnectionError",
                       exc_msg=f"HTTPSConnectionPool(host='api.example.com', port=443): Max "
                               f"retries exceeded with url: /v1/orders/{i} (Caused by "
                               f"NewConnectionError('Failed to establish a new connection'))")
    retries = 2 if kind == "retry" else 0
    outcome = {"failure": "failure"}.get(kind, "success")
    return str(uuid.UUID(int=random.getrandbits(128), version=4)), static, attempt, retries, \
        outcome


def run_day(settings: WardenSettings, args: argparse.Namespace) -> dict[str, float]:
    speed = args.speed
    day_real = DAY / speed
    minute_real = 60.0 / speed
    grace = retention.GRACE / speed
    recorders = [Recorder(settings) for _ in range(WRITERS)]
    for r in recorders:
        r.stop()
    kinds = (["failure"] * round(args.failure * 1000) + ["retry"] * round(args.retry * 1000)
             + ["slow"] * round(args.slow * 1000))
    kinds += ["plain"] * (1000 - len(kinds))
    start = time.monotonic()
    sim_start = time.time() - DAY
    next_sweep = start + minute_real
    sweeps = behind = 0
    for i in range(args.tasks):
        due = start + i * day_real / args.tasks
        now = time.monotonic()
        if now < due:
            time.sleep(due - now)
        elif now - due > 5:
            behind += 1
        if i and i % (args.tasks // 10) == 0:
            print(f"  {i:,} tasks, {time.monotonic() - start:.0f} s, "
                  f"{max(0.0, time.monotonic() - due):.1f} s behind", file=sys.stderr,
                  flush=True)
        kind = kinds[i % 1000]
        task_id, static, attempt, retries, outcome = record(
            i, sim_start + i * DAY / args.tasks, kind, args.names)
        r = recorders[i % WRITERS]
        r.task(task_id, static=static, attempt=attempt, retries=retries, rank=RANK_FINAL)
        r.observe(static["name"], attempt["finished"], outcome, attempt["runtime"],
                  attempt["wait"], static["queue"], retries > 0)
        if i % args.flush_every == args.flush_every - 1:
            for w in recorders:
                w.flush()
        if time.monotonic() >= next_sweep:
            retention.sweep_retention(settings, grace=grace)
            sweeps += 1
            next_sweep += minute_real
    for w in recorders:
        w.stop(timeout=5.0)  # the last flush; no thread left to write after the server stops
    elapsed = time.monotonic() - start
    time.sleep(grace + 0.5)
    retention.sweep_retention(settings, grace=grace)
    return {"elapsed": elapsed, "sweeps": sweeps, "late_seconds": behind}


def memory_by_kind(client: redis.Redis, keys: Keys) -> dict[str, float]:
    """Bytes by key family, from MEMORY USAGE of every key (exact, slow on purpose)."""
    kinds: dict[str, float] = {}
    pipe_keys: list[str] = []

    def family(key: str) -> str:
        rest = key[len(keys.prefix) + 1:]
        head = rest.split(":", 1)[0]
        return {"task": "task records", "m": "minute buckets", "h": "hourly buckets",
                "fm": "fleet minute", "fh": "fleet hourly", "sm": "minute summaries",
                "s10": "10-min summaries", "sh": "hourly summaries", "recent": "record indexes",
                "retain": "record indexes", "ix": "search indexes", "m10": "10-min buckets",
                "fm10": "fleet 10-min"}.get(head, "other")

    def drain() -> None:
        pipe = client.pipeline(transaction=False)
        for k in pipe_keys:
            pipe.memory_usage(k, samples=0)
        for k, size in zip(pipe_keys, pipe.execute(), strict=True):
            kinds[family(k)] = kinds.get(family(k), 0) + int(size or 0)
        pipe_keys.clear()

    for key in client.scan_iter(match=f"{keys.prefix}:*", count=5000):
        pipe_keys.append(key)
        if len(pipe_keys) >= 5000:
            drain()
    drain()
    return kinds


def _redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def lookups(settings: WardenSettings, client: redis.Redis, keys: Keys,
            n: int) -> tuple[list[float], int]:
    """Times of looking up ``n`` indexed records; how many had expired since the last sweep
    (their index entries leave at the next one)."""
    ids = list(client.zrandmember(keys.recent, n) or [])
    monitor = CeleryMonitor(settings)
    times, expired = [], 0
    for task_id in ids:
        t = time.perf_counter()
        status = monitor.get_task_status(task_id)
        if status["known"]:
            times.append((time.perf_counter() - t) * 1000)
        else:
            expired += 1
    return times, expired


def main() -> None:
    # SIGTERM unwinds like Ctrl-C, so the embedded Redis server is stopped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000_000)
    parser.add_argument("--speed", type=float, default=200.0,
                        help="time compression (a day in 86400/speed seconds)")
    parser.add_argument("--policy", default="recent", choices=["all", "recent", "sample",
                                                              "none"])
    parser.add_argument("--names", type=int, default=200)
    parser.add_argument("--failure", type=float, default=0.01)
    parser.add_argument("--retry", type=float, default=0.02)
    parser.add_argument("--slow", type=float, default=0.005)
    parser.add_argument("--max-mb", type=int, default=1024)
    parser.add_argument("--flush-every", type=int, default=FLUSH_EVERY,
                        help="tasks between flushes of all 16 writers (smaller: smaller chunks, "
                             "as a fleet of many processes each flushing every 250 ms sends)")
    args = parser.parse_args()
    with EmbeddedRedis(tempfile.mkdtemp(prefix="warden-budget-"), appendonly=False) as server:
        base = load_settings(REDIS_URL=server.url, WARDEN_KEY_PREFIX="budget",
                             WARDEN_SUCCESS_RECORDS=args.policy,
                             WARDEN_RECORDS_MAX_MB=str(args.max_mb))
        settings = scaled(base, args.speed)
        client = redis.Redis.from_url(server.url, decode_responses=True)
        empty = int(client.info("memory")["used_memory"])
        cpu0 = _redis_cpu(client)
        day = run_day(settings, args)
        redis_cpu = _redis_cpu(client) - cpu0
        keys = Keys(settings.key_prefix)
        kinds = memory_by_kind(client, keys)  # its SCAN also reclaims keys already expired
        used = int(client.info("memory")["used_memory"]) - empty
        records = int(client.zcard(keys.recent))
        times, expired = lookups(settings, client, keys, 10_000)
        stats = client.hgetall(keys.stats("retention"))
        client.close()
    mb = 1024 * 1024
    week = used + 6 * sum(kinds.get(k, 0) for k in ("minute buckets", "fleet minute",
                                                        "minute summaries", "10-min summaries",
                                                        "10-min buckets", "fleet 10-min"))
    print(f"simulated day: {args.tasks:,} tasks, policy {args.policy}, speed x{args.speed:g}, "
          f"real {day['elapsed']:.0f} s (target {DAY / args.speed:.0f} s), "
          f"{day['sweeps']:.0f} sweeps, tasks written >5 s late: {day['late_seconds']:.0f}")
    print(f"{'kind':<18}{'MB':>10}")
    for kind, size in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"{kind:<18}{size / mb:>10.1f}")
    print(f"{'used_memory':<18}{used / mb:>10.1f}   (Redis INFO, above an empty server)")
    print(f"{'7-day buckets':<18}{week / mb:>10.1f}   (used_memory + 6 more days of minute "
          f"buckets and summaries: the steady state)")
    print(f"Redis CPU while writing (INFO used_cpu, user+sys, sweeps included): "
          f"{redis_cpu:.2f} s, {redis_cpu / args.tasks * 1e6:.1f} us per task")
    print(f"records kept: {records:,} ({records / args.tasks:.1%} of the day), "
          f"{kinds.get('task records', 0) / max(records, 1):.0f} B per record hash, "
          f"{(kinds.get('task records', 0) + kinds.get('record indexes', 0)) / max(records, 1):.0f}"
          f" B with its index entries, "
          f"{kinds.get('search indexes', 0) / max(records, 1):.0f} B of search index entries")
    print(f"sweep: {stats}")
    print(f"lookup of a kept record (get_task_status, {len(times):,} ids): "
          f"p50 {statistics.median(times):.3f} ms, "
          f"p99 {statistics.quantiles(times, n=100)[98]:.3f} ms; {expired} indexed ids had "
          f"expired since the last sweep")


if __name__ == "__main__":
    main()
