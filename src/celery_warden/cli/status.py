"""``warden status|workers|task|perf``: the fleet's state, read from the store and the broker."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from celery_warden.cli.common import (
    JsonOpt,
    WindowOpt,
    celery_app_of,
    cell,
    check_window,
    console,
    emit_json,
    fail,
    monitor_for,
    reading,
)
from celery_warden.cli.tables import perf_table, queues_table, workers_table
from celery_warden.read.beat import unconsumed_beat_queues
from celery_warden.redaction import mask_url
from celery_warden.units import num, pct, secs


# -- commands --------------------------------------------------------------------------------
def status(ctx: typer.Context, as_json: JsonOpt = False, window: WindowOpt = "1h") -> None:
    """KPIs, workers and queue depths, once.

    With `celery -A proj`, also the beat-fed queues that no online worker consumes.
    """
    check_window(window)
    monitor = monitor_for(ctx)
    app = celery_app_of(ctx)
    with reading(monitor):
        kpis = monitor.get_kpis(window)
        overall = monitor.get_performance_stats(None, window)
        health = monitor.get_worker_health()
    starved = unconsumed_beat_queues(app, health) if app is not None else []
    warnings = [f"warning: queue {s['queue']} is fed by beat ({', '.join(s['tasks'])}) but no "
                "online worker consumes it: those tasks will pile up unrun" for s in starved]
    depth = kpis["queue_depth"]
    if as_json:
        emit_json({
            "redis_url": mask_url(monitor.settings.redis_url),
            "key_prefix": monitor.settings.key_prefix,
            "window": window,
            "kpis": kpis,
            "performance": overall,
            "workers": health,
            "queues": depth["per_queue"],
            "unconsumed_beat_queues": starved,
        })
        for line in warnings:
            typer.echo(line, err=True)
        return
    out = console()
    table = Table(title=f"Celery Warden status (last {window})", title_justify="left")
    table.add_column("KPI")
    table.add_column("value", justify="right")
    table.add_column("source")
    util = kpis["worker_utilization"]["value"]
    table.add_row("tasks finished", str(overall["count"]), "metric buckets")
    table.add_row("throughput", f"{overall['throughput_per_minute']:.1f}/min", "metric buckets")
    table.add_row("task success rate", pct(kpis["task_success_rate"]["value"]),
                  kpis["task_success_rate"]["source"])
    table.add_row("retry rate", pct(kpis["retry_rate"]["value"]), kpis["retry_rate"]["source"])
    table.add_row("p95 duration", secs(overall["p95"]), "metric buckets")
    table.add_row("queue depth", num(depth["value"]), depth["source"])
    table.add_row("worker utilization", pct(util), kpis["worker_utilization"]["source"])
    table.add_row("DLQ size", num(kpis["dlq_size"]["value"]), kpis["dlq_size"]["source"])
    table.add_row("circuit breaker trips", num(kpis["circuit_breaker_trips"]["value"]),
                  kpis["circuit_breaker_trips"]["source"])
    out.print(table)
    averages = kpis["average_task_duration"]["value"]
    if averages:
        avg = Table(title="Average task duration", title_justify="left")
        avg.add_column("task")
        avg.add_column("avg", justify="right")
        for name, value in averages.items():
            avg.add_row(cell(name), secs(value))
        out.print(avg)
    out.print(workers_table(health))
    out.print(queues_table(depth["per_queue"], depth["source"]))
    for line in warnings:
        typer.echo(line)


def workers(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Worker health: online/offline, heartbeat age, load."""
    monitor = monitor_for(ctx)
    with reading(monitor):
        health = monitor.get_worker_health()
    if as_json:
        emit_json(health)
        return
    console().print(workers_table(health))


def task(
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(help="The task id.")],
    as_json: JsonOpt = False,
) -> None:
    """State, timing, worker and error of one task (exit code 1 if the id is unknown)."""
    monitor = monitor_for(ctx)
    with reading(monitor):
        info = monitor.get_task_status(task_id)
    if as_json:
        emit_json(info)
        if not info["known"]:
            raise typer.Exit(1)
        return
    if not info["known"]:
        fail(f"warden: unknown task id {task_id}: {info['detail']}", 1)
    table = Table(title=cell(f"Task {task_id}"), title_justify="left", show_header=False)
    table.add_column("field")
    table.add_column("value")
    for key, value in info.items():
        if key in {"task_id", "known"} or value is None:
            continue
        if key == "error":
            value = f"{value['type']}: {value['message']}"
        elif key in {"runtime", "queue_wait", "elapsed"}:
            value = secs(value)
        table.add_row(key, cell(value))
    console().print(table)


def perf(
    ctx: typer.Context,
    task_name: Annotated[
        str | None, typer.Argument(help="A task name; omit for every task.")
    ] = None,
    window: WindowOpt = "1h",
    as_json: JsonOpt = False,
) -> None:
    """Counts, success/retry rates, durations (avg, p50, p95, p99) and throughput."""
    check_window(window)
    monitor = monitor_for(ctx)
    with reading(monitor):
        stats = monitor.get_performance_stats(task_name, window)
        per_task = [] if task_name else [
            monitor.get_performance_stats(name, window) for name in monitor.task_names()
        ]
    if as_json:
        emit_json({**stats, "tasks": per_task} if not task_name else stats)
        return
    title = f"Performance of {task_name or 'all tasks'} (last {window})"
    console().print(perf_table([stats, *per_task], title))


def register(cli: typer.Typer) -> None:
    for command in (status, workers, task, perf):
        cli.command()(command)


__all__ = ["perf", "register", "status", "task", "workers"]
