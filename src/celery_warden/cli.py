"""``warden``: the command line. ``warden demo`` runs a whole fleet; the rest read the store.

Two ways in, one implementation:

* the ``warden`` console script (:func:`main`), which builds settings with
  :func:`~celery_warden.load_settings` from the environment;
* ``celery -A proj warden ...`` through Celery's ``celery.commands`` entry point
  (:data:`celery_command`, the way Flower plugs in). There the app comes from ``ctx.obj.app``
  and the settings from the ``Warden`` installed on it, so the command reads exactly the store
  and queues that app's workers write to.

Exit codes: 0 success, 1 a runtime failure (Redis unreachable, unknown task id), 2 a usage or
configuration error (an invalid setting: the message names the variable, never a traceback).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import click
import typer
from celery.bin.base import CeleryCommand
from rich.console import Console
from rich.table import Table

from celery_warden.errors import SettingsError
from celery_warden.formatting import num, pct, secs
from celery_warden.settings import WardenSettings, load_settings

if TYPE_CHECKING:
    from celery import Celery

    from celery_warden.monitor import CeleryMonitor

cli = typer.Typer(
    name="warden",
    help="Celery Warden: monitoring for Celery fleets. `warden demo` runs a live demo.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


# -- helpers ---------------------------------------------------------------------------------
def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` to stderr and exit with ``code`` (no traceback)."""
    typer.echo(message, err=True)
    raise typer.Exit(code)


def safe_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for printing)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{user}:***@{host}{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def celery_app_of(ctx: typer.Context) -> Celery | None:
    """The Celery app when invoked as ``celery -A proj warden ...`` (else ``None``)."""
    from celery import Celery

    obj = ctx.obj
    found = getattr(obj, "app", None) if obj is not None else None
    return found if isinstance(found, Celery) else None


def settings_for(ctx: typer.Context) -> WardenSettings:
    """Settings of the Warden installed on Celery's app, else from the environment.

    A :class:`SettingsError` ends the command with its message on stderr and exit code 2.
    """
    from celery_warden.warden import Warden

    app = celery_app_of(ctx)
    if app is not None:
        installed = Warden.installed_on(app)
        if installed is not None:
            return installed.settings
    try:
        return load_settings()
    except SettingsError as exc:
        fail(f"warden: {exc}", 2)


def monitor_for(ctx: typer.Context) -> CeleryMonitor:
    from celery_warden.monitor import CeleryMonitor

    return CeleryMonitor(settings_for(ctx), app=celery_app_of(ctx))


@contextlib.contextmanager
def reading(monitor: CeleryMonitor) -> Iterator[None]:
    """Turn "Redis/broker unreachable" into one clear line and exit code 1."""
    import redis
    from kombu.exceptions import OperationalError

    try:
        yield
    except (redis.RedisError, OperationalError, ConnectionError, TimeoutError) as exc:
        fail(
            f"warden: cannot read from Redis at {safe_url(monitor.settings.redis_url)}: "
            f"{type(exc).__name__}: {exc}",
            1,
        )


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str, sort_keys=False))


def console() -> Console:
    return Console(highlight=False)


def workers_table(health: dict[str, Any]) -> Table:
    table = Table(
        title=f"Workers: {health['online']} online, {health['offline']} offline "
        f"(offline after {health['offline_after_seconds']:g}s without heartbeat)",
        title_justify="left",
    )
    for col in ("worker", "status", "heartbeat age", "active/slots", "processed", "queues",
                "pid", "rss"):
        table.add_column(col)
    for w in health["workers"]:
        status = w["status"] if w["status"] == w["state"] else f"{w['status']} ({w['state']})"
        style = "green" if w["status"] == "online" else "red"
        table.add_row(
            w["hostname"], f"[{style}]{status}[/]", f"{w['heartbeat_age']:.1f}s",
            f"{w['active']}/{w['concurrency']}", str(w["processed"]),
            ",".join(w["queues"]), str(w["pid"]), f"{w['rss_bytes'] / 2**20:.0f} MiB",
        )
    if not health["workers"]:
        table.caption = "no worker has sent a heartbeat yet"
    return table


def queues_table(depths: dict[str, int | None] | None, source: str = "broker") -> Table:
    table = Table(title="Queues (messages waiting)", title_justify="left")
    table.add_column("queue")
    table.add_column("depth", justify="right")
    if depths is None:
        table.add_row(f"({source})", "-")
        return table
    for name, depth in depths.items():
        table.add_row(name, "not declared" if depth is None else str(depth))
    return table


def perf_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("task", "count", "success", "failure", "retry", "success rate", "retry rate",
                "avg", "p50", "p95", "p99", "throughput/min"):
        table.add_column(col, justify="left" if col == "task" else "right")
    for s in rows:
        table.add_row(
            s["task_name"] or "(all tasks)", str(s["count"]), str(s["success"]),
            str(s["failure"]), str(s["retry"]), pct(s["success_rate"]), pct(s["retry_rate"]),
            secs(s["avg_duration"]), secs(s["p50"]), secs(s["p95"]), secs(s["p99"]),
            f"{s['throughput_per_minute']:.1f}",
        )
    return table


def check_window(window: str) -> None:
    from celery_warden.windows import parse_window

    try:
        parse_window(window)
    except ValueError as exc:
        fail(f"warden: --window: {exc}", 2)


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
WindowOpt = Annotated[str, typer.Option("--window", "-w", help="Time window, e.g. 5m, 1h, 7d.")]


# -- commands --------------------------------------------------------------------------------
@cli.command()
def status(ctx: typer.Context, as_json: JsonOpt = False, window: WindowOpt = "1h") -> None:
    """KPIs, workers and queue depths, once."""
    check_window(window)
    monitor = monitor_for(ctx)
    with reading(monitor):
        kpis = monitor.get_kpis(window)
        overall = monitor.get_performance_stats(None, window)
        health = monitor.get_worker_health()
    depth = kpis["queue_depth"]
    if as_json:
        emit_json({
            "redis_url": safe_url(monitor.settings.redis_url),
            "key_prefix": monitor.settings.key_prefix,
            "window": window,
            "kpis": kpis,
            "performance": overall,
            "workers": health,
            "queues": depth["per_queue"],
        })
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
            avg.add_row(name, secs(value))
        out.print(avg)
    out.print(workers_table(health))
    out.print(queues_table(depth["per_queue"], depth["source"]))


@cli.command()
def workers(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Worker health: online/offline, heartbeat age, load."""
    monitor = monitor_for(ctx)
    with reading(monitor):
        health = monitor.get_worker_health()
    if as_json:
        emit_json(health)
        return
    console().print(workers_table(health))


@cli.command()
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
    table = Table(title=f"Task {task_id}", title_justify="left", show_header=False)
    table.add_column("field")
    table.add_column("value")
    for key, value in info.items():
        if key in {"task_id", "known"} or value is None:
            continue
        if key == "error":
            value = f"{value['type']}: {value['message']}"
        elif key in {"runtime", "queue_wait", "elapsed"}:
            value = secs(value)
        table.add_row(key, str(value))
    console().print(table)


@cli.command()
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


@cli.command()
def demo(
    duration: Annotated[float, typer.Option(
        "--duration", min=0, help="Seconds to run; 0 runs until Ctrl-C.")] = 0,
    rate: Annotated[float, typer.Option(
        "--rate", min=0, max=10_000, help="Tasks sent per second (0: no workload).")] = 20.0,
    concurrency: Annotated[int, typer.Option(
        "--concurrency", min=1, max=64, help="Worker pool processes.")] = 2,
    app: Annotated[str, typer.Option(
        "--app", help="Celery app module of the reference app.")] = "app.worker.celery_app",
    data_dir: Annotated[Path, typer.Option(
        "--data-dir", help="Where the embedded Redis, logs and beat schedule live.")]
        = Path(".warden"),
    interval: Annotated[float, typer.Option(
        "--interval", min=0.2, help="Seconds between summary refreshes.")] = 2.0,
) -> None:
    """Run a live demo: Redis, a worker, beat and a steady mixed workload, with a summary."""
    from celery_warden.demo import DemoOptions, run_demo

    code = run_demo(DemoOptions(duration=duration, rate=rate, concurrency=concurrency, app=app,
                                data_dir=data_dir, interval=interval))
    raise typer.Exit(code)


def _register_subcommands() -> None:
    from celery_warden.cli_breakers import breakers_app
    from celery_warden.cli_dlq import dlq_app, errors

    cli.add_typer(dlq_app, name="dlq")
    cli.add_typer(breakers_app, name="breakers")
    cli.command()(errors)


_register_subcommands()


def run(args: list[str] | None = None, prog_name: str = "warden", obj: Any = None) -> NoReturn:
    """Run the typer app (always ends with ``SystemExit`` carrying the exit code)."""
    command = typer.main.get_command(cli)
    command.main(args=args, prog_name=prog_name, standalone_mode=True, obj=obj)
    raise SystemExit(0)  # pragma: no cover - standalone mode always exits


@click.command(
    name="warden",
    cls=CeleryCommand,
    add_help_option=False,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def celery_command(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Celery Warden: status, workers, task, perf, demo (see `celery warden --help`).

    Celery's ``celery.commands`` entry point (the way Flower plugs in). Typer runs on its own
    vendored click, so this real click command hands the arguments over to the typer app, with
    Celery's context object (``ctx.obj.app`` is the ``-A`` app) as the typer context's ``obj``.
    """
    parent = ctx.parent.info_name if ctx.parent is not None else None
    run(list(args), prog_name=f"{parent or 'celery'} warden", obj=ctx.obj)


def main() -> None:
    """Console-script entry point (``warden``): JSON or console logging like the workers."""
    try:
        settings = load_settings()
    except SettingsError:
        pass  # the command itself reports it (exit code 2, no traceback)
    else:
        from celery_warden.logging import configure_logging

        configure_logging(settings)
    cli(prog_name="warden")


if __name__ == "__main__":  # pragma: no cover
    main()
