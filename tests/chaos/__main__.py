"""``python -m tests.chaos [--broker redis|rabbitmq|both] [--tasks N] [--rate R]``: the chaos
suite's full run (``make chaos``). Exits non-zero when a task was lost, Warden miscounted, or a
re-execution has no fault to explain it."""

from __future__ import annotations

import argparse
import signal
import sys

from tests.chaos.driver import run


def main() -> int:
    # SIGTERM ends the run through its clean-up (workers, redis-server, proxy, queues).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(prog="python -m tests.chaos")
    parser.add_argument("--broker", choices=("redis", "rabbitmq", "both"), default="both")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=150.0, help="submissions per second")
    parser.add_argument("--settle", type=float, default=300.0,
                        help="seconds to wait for every task to reach a final state")
    parser.add_argument("--all-ids", action="store_true",
                        help="list every lost/miscounted id (default: the first 30 of each)")
    ns = parser.parse_args()
    brokers = ["redis", "rabbitmq"] if ns.broker == "both" else [ns.broker]
    reports = [run(b, ns.tasks, ns.rate, settle_timeout=ns.settle) for b in brokers]
    for report in reports:
        print()
        print(report.table(limit=None if ns.all_ids else 30))
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
