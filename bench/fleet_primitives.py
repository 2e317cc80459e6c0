"""What does one fleet-primitive check cost? Redis round trips, server commands, latency.

Run ``.venv/bin/python bench/fleet_primitives.py`` (``--checks N`` per arm, default 5000;
``--redis-url`` for a loopback Redis instead of the isolated embedded one; ``--json PATH``).

Every arm runs ``N`` checks from one process and one connection, next to a plain ``PING`` as
the reference round trip; the arms are interleaved in ``--rounds`` rounds (default 10) so that
drift on a shared machine hits all of them alike. For each arm it reports:

* **round trips / check**: commands the client sent (``EVALSHA``/``EVAL``/``PING`` calls in
  ``INFO commandstats``) divided by ``N``; the design target is 1;
* **server cmds / check**: commands Redis ran for it, including those inside the Lua script;
* latency per check (mean, p50, p99 in microseconds), checks per second, and the p50 as a
  multiple of PING's p50 (the median is the stable number on a shared machine).

The ``limits`` rows are the library the issue asked to evaluate first (its Redis moving window,
the closest it has to Celery's evenly spaced ``rate_limit``), measured the same way; a throttled
check there needs a second call (``get_window_stats``) to learn how long to defer.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from celery_warden.embedded import EmbeddedRedis
from celery_warden.errors import CircuitOpenError
from celery_warden.fleet import context as _fleet
from celery_warden.fleet.breaker import CircuitBreaker
from celery_warden.fleet.idempotency import IdempotencyStore
from celery_warden.fleet.rate_limit import FleetRateLimiter, Limit, parse_rate
from celery_warden.keys import Keys
from celery_warden.settings import load_settings

CLIENT_COMMANDS = ("evalsha", "eval", "ping", "script")


def commandstats(conn: redis.Redis) -> dict[str, int]:
    raw = conn.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in raw.items()}


def run_batch(conn: redis.Redis, check: Callable[[int], Any], first: int, count: int,
              lat: list[float], stats: dict[str, int]) -> float:
    """Run ``count`` checks; append latencies, add the command deltas; return elapsed time."""
    before = commandstats(conn)
    start = time.perf_counter()
    for i in range(first, first + count):
        t0 = time.perf_counter()
        check(i)
        lat.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    after = commandstats(conn)
    for k, v in after.items():
        if k not in ("info", "config"):
            stats[k] = stats.get(k, 0) + v - before.get(k, 0)
    return elapsed


def measure_all(conn: redis.Redis, arms_: list[tuple[str, Callable[[int], Any]]], checks: int,
                rounds: int) -> list[dict[str, Any]]:
    """Interleave the arms in ``rounds`` rounds so that drift (CPU frequency, neighbours) hits
    every arm alike, then summarise each arm."""
    for _, check in arms_:  # warm-up: scripts loaded, connection open
        for i in range(200):
            check(-1 - i)
    per = max(1, checks // rounds)
    lat: dict[str, list[float]] = {name: [] for name, _ in arms_}
    stats: dict[str, dict[str, int]] = {name: {} for name, _ in arms_}
    total = dict.fromkeys(lat, 0.0)
    for r in range(rounds):
        for name, check in arms_:
            total[name] += run_batch(conn, check, r * per, per, lat[name], stats[name])
    out = []
    for name, _ in arms_:
        n = len(lat[name])
        ordered = sorted(lat[name])
        client = sum(stats[name].get(k, 0) for k in CLIENT_COMMANDS)
        out.append({
            "arm": name,
            "round_trips_per_check": client / n,
            "server_commands_per_check": sum(stats[name].values()) / n,
            "mean_us": statistics.fmean(ordered) * 1e6,
            "p50_us": ordered[n // 2] * 1e6,
            "p99_us": ordered[int(n * 0.99)] * 1e6,
            "checks_per_second": n / total[name],
        })
    return out


def arms(url: str, prefix: str) -> list[tuple[str, Callable[[int], Any]]]:
    settings = load_settings(REDIS_URL=url, WARDEN_KEY_PREFIX=prefix)
    conn = _fleet.client(settings)
    keys = Keys(prefix)
    closed = CircuitBreaker("bench-closed", settings=settings, minimum_calls=1000,
                            window_size=1000)
    tripped = CircuitBreaker("bench-open", settings=settings, recovery_timeout=3600)
    tripped.force_open()
    store = IdempotencyStore(settings)
    store.claim("bench-done", "first", 60)
    store.complete("bench-done", "first", {"result": 42}, 3600)
    limiter = FleetRateLimiter(settings)
    free = Limit(keys.ratelimit("task", "bench-free"), parse_rate("1000000/s"), "free")
    slow = Limit(keys.ratelimit("task", "bench-slow"), parse_rate("1/h"), "slow")
    queue = Limit(keys.ratelimit("queue", "bench-q"), parse_rate("1000000/s"), "q")
    limiter.reserve([slow], 0)

    def breaker_call(_: int) -> None:
        closed.record(closed.acquire())

    def breaker_open(_: int) -> None:
        with contextlib.suppress(CircuitOpenError):
            tripped.acquire()

    def idem_first_run(i: int) -> None:
        key = f"bench-{i}-{uuid.uuid4().hex[:6]}"
        store.claim(key, "t", 60)
        store.complete(key, "t", i, 60)

    out: list[tuple[str, Callable[[int], Any]]] = [
        ("PING (reference round trip)", lambda _: conn.ping()),
        ("breaker: acquire (closed)", lambda _: closed.acquire()),
        ("breaker: acquire + record (1 guarded call)", breaker_call),
        ("breaker: acquire refused (open)", breaker_open),
        ("idempotency: duplicate check (key done)",
         lambda _: store.claim("bench-done", "dup", 60)),
        ("idempotency: claim + complete (first run)", idem_first_run),
        ("rate limit: reserve, slot now (1 limit)", lambda _: limiter.reserve([free], 300)),
        ("rate limit: reserve, task + queue limits", lambda _: limiter.reserve([free, queue],
                                                                              300)),
        ("rate limit: throttled (wait beyond max)", lambda _: limiter.reserve([slow], 0)),
    ]
    try:
        import limits
        from limits.storage import RedisStorage
        from limits.strategies import MovingWindowRateLimiter
    except ImportError:
        return out
    storage = RedisStorage(url, key_prefix=f"{prefix}:limits")
    moving = MovingWindowRateLimiter(storage)
    many, one = limits.parse("1000000/second"), limits.parse("1/hour")
    moving.hit(one, "slow")

    def limits_throttled(_: int) -> None:
        if not moving.hit(one, "slow"):
            moving.get_window_stats(one, "slow")

    out += [
        ("limits: moving window hit, allowed", lambda _: moving.hit(many, "free")),
        ("limits: throttled (hit + window stats)", limits_throttled),
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--json", default=None)
    opts = parser.parse_args(argv)
    prefix = f"bench-fp-{uuid.uuid4().hex[:6]}"
    server = None
    url = opts.redis_url
    if url is None:
        server = EmbeddedRedis(tempfile.mkdtemp(prefix="warden-bench-"), appendonly=False)
        server.start()
        url = server.url
    conn = redis.Redis.from_url(url, decode_responses=True)
    try:
        version = conn.info("server")["redis_version"]
        print(f"redis {version} at {url} (loopback), {opts.checks} checks per arm in "
              f"{opts.rounds} interleaved rounds, one process, one connection")
        results = measure_all(conn, arms(url, prefix), opts.checks, opts.rounds)
    finally:
        for key in conn.scan_iter(match=f"{prefix}:*", count=1000):
            conn.unlink(key)
        conn.close()
        if server is not None:
            server.stop()
    ping = results[0]["p50_us"]
    print(f"{'check':44} {'rtt/chk':>7} {'cmds/chk':>8} {'mean us':>8} {'p50 us':>7} "
          f"{'p99 us':>7} {'checks/s':>9} {'p50/PING':>8}")
    for r in results:
        print(f"{r['arm']:44} {r['round_trips_per_check']:7.2f} "
              f"{r['server_commands_per_check']:8.2f} {r['mean_us']:8.1f} {r['p50_us']:7.1f} "
              f"{r['p99_us']:7.1f} {r['checks_per_second']:9.0f} {r['p50_us'] / ping:8.2f}")
    if opts.json:
        Path(opts.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
