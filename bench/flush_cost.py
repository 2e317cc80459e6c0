"""Redis CPU per task of the flush script alone, from Redis's own command statistics.

Why a bench of its own: ``redis_ceiling.py`` fits Redis's whole CPU over a simulated fleet, and
on a loaded machine its generator misses the target rates, so the fit moves by tens of
microseconds between runs. This one writes each task as a fleet does — the publisher's SENT
record in one chunk, the pool child's final record (and its metrics) in another, ``--per-chunk``
tasks per chunk — into a Redis of its own, and reads the server's own CPU time (``INFO cpu``,
user + system: what the flushes cost the Redis process, network handling included) and
``INFO commandstats`` (microseconds inside ``EVALSHA``: wall time, so inflated when the machine
is loaded). Nothing else talks to that Redis while it runs.

    python bench/flush_cost.py                       # 20,000 tasks, 1 and 50 per chunk
    python bench/flush_cost.py --tasks 50000 --per-chunk 1,10,200
    python bench/flush_cost.py --prefill 200000      # indexes the size of a busy store's

The mix: 200 task names, 3 queues, 7 % failed, 3 % retried (a RETRY state, then the final one).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from celery_warden.embedded import EmbeddedRedis  # noqa: E402
from celery_warden.record.order import RANK_FINAL, RANK_RETRY, RANK_SENT  # noqa: E402
from celery_warden.record.recorder import Recorder  # noqa: E402
from celery_warden.settings import load_settings  # noqa: E402

#: Commands not issued by the flush script (the client's own, and the script calls themselves).
NOT_IN_SCRIPT = ("evalsha", "eval", "info", "script", "client", "hello", "ping", "select")


def script_usec(client: redis.Redis) -> tuple[float, int, float, int]:
    """Microseconds in the flush script, its calls, the server's CPU microseconds, and the
    commands the script issued (``redis.call``: deterministic, unlike the times)."""
    stats = client.info("commandstats")
    got = [stats.get(f"cmdstat_{c}", {}) for c in ("evalsha", "eval")]
    inner = sum(int(v.get("calls", 0)) for k, v in stats.items()
                if k.removeprefix("cmdstat_") not in NOT_IN_SCRIPT)
    cpu = client.info("cpu")
    return (sum(float(s.get("usec", 0)) for s in got), sum(int(s.get("calls", 0)) for s in got),
            (float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])) * 1e6, inner)


def run(url: str, tasks: int, per_chunk: int, prefix: str) -> dict[str, float]:
    """Write ``tasks`` tasks, ``per_chunk`` per flush, under ``prefix``; what Redis spent."""
    settings = load_settings(REDIS_URL=url, WARDEN_KEY_PREFIX=prefix)
    publisher, child = Recorder(settings), Recorder(settings)
    for r in (publisher, child):
        r.stop()
    client = redis.Redis.from_url(url, decode_responses=True)
    usec0, calls0, cpu0, inner0 = script_usec(client)
    for i in range(tasks):
        now = time.time()
        tid = str(uuid.uuid4())
        name, queue = f"app.tasks.job_{i % 200}", ("default", "high", "low")[i % 3]
        static = {"name": name, "queue": queue, "sent": now - 0.02, "priority": "",
                  "args": f"({i},)", "kwargs": "{}"}
        publisher.task(tid, static=static, attempt={"state": "SENT"}, rank=RANK_SENT)
        retried, failed = i % 100 < 3, 3 <= i % 100 < 10
        attempt = {"state": "FAILURE" if failed else "SUCCESS", "started": now - 0.01,
                   "received": now - 0.015, "worker": f"celery@w-{i % 5}", "wait": 0.01,
                   "finished": now, "runtime": 0.01}
        if failed:
            attempt.update(exc_type="ValueError", exc_msg=f"bad input {i}")
        if retried:
            child.task(tid, static={"name": name}, attempt={"state": "RETRY"}, rank=RANK_RETRY)
            child.flush()
        child.task(tid, static={"name": name, "queue": queue}, attempt=attempt,
                   retries=1 if retried else 0, rank=RANK_FINAL)
        child.observe(name, now, "failure" if failed else "success", 0.01, 0.01, queue)
        if i % per_chunk == per_chunk - 1:
            publisher.flush()
            child.flush()
    publisher.flush()
    child.flush()
    usec1, calls1, cpu1, inner1 = script_usec(client)
    client.close()
    return {"per_chunk": per_chunk, "calls": calls1 - calls0, "cpu_per_task": (cpu1 - cpu0) / tasks,
            "usec_per_task": (usec1 - usec0) / tasks,
            "usec_per_call": (usec1 - usec0) / max(calls1 - calls0, 1),
            "commands_per_task": (inner1 - inner0) / tasks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--per-chunk", default="1,50")
    parser.add_argument("--prefill", type=int, default=0,
                        help="tasks written first (200 per chunk, not measured), so the store's "
                             "indexes have the size of a busy store's")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(tmp, appendonly=False) as server:
        if args.prefill:
            run(server.url, args.prefill, 200, "fc")
        print(f"prefilled with {args.prefill:,} tasks")
        print(" per chunk   script calls   Redis CPU us/task   in script us/task   us/call"
              "   commands/task")
        for n in (int(x) for x in args.per_chunk.split(",")):
            row = run(server.url, args.tasks, n, "fc")
            print(f"{n:>10}   {row['calls']:>12,}   {row['cpu_per_task']:>17.1f}   "
                  f"{row['usec_per_task']:>17.1f}   {row['usec_per_call']:>7.1f}"
                  f"   {row['commands_per_task']:>13.1f}")


if __name__ == "__main__":
    main()
