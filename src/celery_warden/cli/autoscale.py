"""``warden autoscale``: the worker processes each queue needs, and why (the same answer as
``GET /api/v1/autoscale``, which KEDA's metrics-api scaler reads)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from celery_warden.autoscale import Autoscaler
from celery_warden.cli.common import JsonOpt, console, emit_json, monitor_for, reading


def _n(value: Any, fmt: str = "{:g}") -> Text:
    return Text("-" if value is None else fmt.format(value))


def autoscale(ctx: typer.Context,
              queue: Annotated[str | None, typer.Option(
                  "--queue", "-q", help="One queue (logical or full name).")] = None,
              as_json: JsonOpt = False) -> None:
    """Desired worker processes per queue, with the reasoning.

    From backlog, arrival rate, run time and the target latency (WARDEN_TARGET_LATENCY).
    """
    monitor = monitor_for(ctx)
    try:
        with reading(monitor):
            answer = Autoscaler(monitor.settings, monitor).recommend(queue)
    finally:
        monitor.redis.close()
    if as_json:
        emit_json(answer)
        return
    table = Table(title=f"Autoscaling (target latency {answer['target_latency']:g}s)",
                  title_justify="left")
    for col in ("queue", "desired", "now needed", "running", "backlog", "arrivals/s",
                "run time", "oldest"):
        table.add_column(col, justify="left" if col == "queue" else "right")
    for name, q in answer["queues"].items():
        i = q["inputs"]
        table.add_row(Text(name), _n(q["desired_processes"]), _n(q["desired_now"]),
                      _n(q["current_processes"]), Text(f"{i['queued']}+{i['reserved']}"),
                      _n(i["arrival_rate"]), _n(i["service_time"], "{:.3g}s"),
                      _n(i["oldest_age"], "{:.0f}s"))
    out = console()
    out.print(table)
    for name, q in answer["queues"].items():
        for line in q["reasoning"]:
            out.print(Text(f"{name}: {line}"))


__all__ = ["autoscale"]
