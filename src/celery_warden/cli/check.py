"""``warden check``: is this fleet monitored and healthy? (read-only unless ``--submit``)."""

from __future__ import annotations

from typing import Annotated

import typer

from celery_warden.cli.common import JsonOpt, monitor_for, reading
from celery_warden.selftest.fleet import PROBE_TIMEOUT, FleetChecks
from celery_warden.selftest.report import exit_code, run_checks


def check(
    ctx: typer.Context,
    submit: Annotated[str | None, typer.Option(
        "--submit", metavar="QUEUE",
        help="Also send Warden's probe task to this queue and follow it end to end.")] = None,
    timeout: Annotated[float, typer.Option(
        min=1, max=600, help="Seconds the probe may take.")] = PROBE_TIMEOUT,
    as_json: JsonOpt = False,
) -> None:
    """Check a live fleet, one line per check and a summary (exit code 1 if any fails).

    The checks: store, broker, workers, queues, failure rate, DLQ, breakers.
    """
    monitor = monitor_for(ctx)
    with reading(monitor):
        outcomes = run_checks(FleetChecks(monitor, submit, timeout).checks(), as_json=as_json,
                              redactor=monitor.dlq.redactor)
    raise typer.Exit(exit_code(outcomes))


__all__ = ["check"]
