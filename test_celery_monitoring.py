#!/usr/bin/env python
"""The spec's fleet self-test: start workers, then run this file.

    celery -A app.worker.celery_app worker --loglevel=info --queues=default,high_priority
    python test_celery_monitoring.py

It checks a live fleet of the reference app — basic task execution, retry mechanisms, time
limits, batch processing, worker health, error tracking, performance monitoring and queue
management — printing one line per check and a summary, and exits non-zero when any fails.
Configuration comes from the same environment as the workers (REDIS_URL, WARDEN_*). For any
other fleet, ``warden check [--submit QUEUE]`` runs the checks that need no particular task.
(Not a pytest module: the test suite runs it as a program, against a real worker.)
"""

from __future__ import annotations

import argparse
import sys

from app.worker.celery_app import celery_app
from app.worker.config import settings
from celery_warden import CeleryMonitor
from celery_warden.selftest.reference import TIMEOUT, ReferenceChecks
from celery_warden.selftest.report import exit_code, run_checks

__test__ = False  # pytest: this file is a program, not a test module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")
    parser.add_argument("--timeout", type=float, default=TIMEOUT,
                        help="seconds each check may wait for its tasks")
    args = parser.parse_args(argv)
    monitor = CeleryMonitor(settings, app=celery_app)
    checks = ReferenceChecks(celery_app, monitor, timeout=args.timeout).checks()
    return exit_code(run_checks(checks, as_json=args.json))


if __name__ == "__main__":
    sys.exit(main())
