#!/usr/bin/env python
"""``delay()`` cost of plain Celery and of Warden versions side by side (arms alternating).

Why: ``overhead.py``'s publisher arm compares plain with this checkout only; to tell whether a
change to the publishing path helped on a shared machine, the version before it must run in
the same rounds. Each arm is a fresh ``python -m bench.apps delay N`` process (no worker) on
one embedded ``redis-server`` that this script starts, empties between runs and stops; an arm
is ``plain``, ``warden`` or ``warden:BENCH_SRC=<dir>`` (another checkout's ``src``). Reported:
median rate (``delay()``/s of the loop) and process CPU per ``delay()`` (the flusher thread's
share during the loop included), and each arm's median per-round ratio to plain.

    python bench/publisher_ab.py [--calls 5000] [--rounds 5] [--arms plain,warden,...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--arms", default="plain,warden")
    opts = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from bench.arms import arm_env
    from celery_warden.embedded import EmbeddedRedis

    server = EmbeddedRedis(tempfile.mkdtemp(prefix="warden-bench-pub-"), appendonly=False)
    url = server.start()
    client = redis.Redis.from_url(url)
    rows: dict[str, list[dict[str, float]]] = {}
    arms = opts.arms.split(",")
    try:
        for r in range(opts.rounds):
            for spec in arms:
                env = arm_env(spec, url, {"WARDEN_KEY_PREFIX": "bench-pub"})
                out = subprocess.run([sys.executable, "-m", "bench.apps", "delay",
                                      str(opts.calls)], env=env, cwd=ROOT, capture_output=True,
                                     text=True, check=False)
                if out.returncode:
                    raise SystemExit(out.stderr[-3000:])
                data = json.loads(out.stdout.strip().splitlines()[-1])
                res = {"rate": opts.calls / data["seconds"],
                       "cpu_us": data["cpu"] / opts.calls * 1e6}
                rows.setdefault(spec, []).append(res)
                print(f"round {r + 1} {spec:45s} {res['rate']:8.0f} delay()/s "
                      f"{res['cpu_us']:7.1f} µs CPU/delay()", flush=True)
                client.flushdb()  # this script's own embedded server: nobody else's data
    finally:
        client.close()
        server.stop()
    base = rows.get("plain")
    print(f"\nmedian of {opts.rounds} rounds, {opts.calls} delay() per run:")
    print(f"{'arm':45s} {'delay()/s':>10s} {'µs CPU':>8s} {'rate/plain':>11s} {'CPU/plain':>10s}")
    for spec, rs in rows.items():
        rate = statistics.median(x["rate"] for x in rs)
        cpu = statistics.median(x["cpu_us"] for x in rs)
        ratio = cpu_ratio = float("nan")
        if base:
            ratio = statistics.median(x["rate"] / b["rate"] for x, b in zip(rs, base, strict=True))
            cpu_ratio = statistics.median(x["cpu_us"] / b["cpu_us"]
                                          for x, b in zip(rs, base, strict=True))
        print(f"{spec:45s} {rate:10.0f} {cpu:8.1f} {ratio:11.3f} {cpu_ratio:10.3f}")


if __name__ == "__main__":
    main()
