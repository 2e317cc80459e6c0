"""``warden``: the command line. ``warden demo`` runs a whole fleet; the rest read the store.

Two ways in, one implementation:

* the ``warden`` console script (:func:`main`), which builds settings with
  :func:`~celery_warden.load_settings` from the environment;
* ``celery -A proj warden ...`` through Celery's ``celery.commands`` entry point
  (:data:`celery_command`, the way Flower plugs in). There the app comes from ``ctx.obj.app``
  and the settings from the ``Warden`` installed on it, so the command reads exactly the store
  and queues that app's workers write to.

Commands live one group per module (:mod:`.status`, :mod:`.dlq`, :mod:`.breakers`,
:mod:`.rabbitmq`); what they share is in :mod:`.common`; nothing imports this module back.
Exit codes: see :mod:`.common`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, NoReturn

import click
import typer
from celery.bin.base import CeleryCommand

from celery_warden.cli import status
from celery_warden.cli.alerts import alerts_app
from celery_warden.cli.autoscale import autoscale
from celery_warden.cli.breakers import breakers_app
from celery_warden.cli.check import check
from celery_warden.cli.dlq import dlq_app, errors
from celery_warden.cli.rabbitmq import rabbitmq_app
from celery_warden.cli.serve import serve_command, token_app
from celery_warden.demo import DemoOptions, run_demo
from celery_warden.errors import SettingsError
from celery_warden.logs.setup import configure_logging
from celery_warden.serve.binding import APP_ENV
from celery_warden.settings import load_settings

cli = typer.Typer(
    name="warden",
    help="Celery Warden: monitoring for Celery fleets. `warden demo` runs a live demo.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


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
    port: Annotated[int, typer.Option(
        "--port", min=0, max=65535,
        help="Port of the API server on 127.0.0.1 (0: no server; taken: a free one).")] = 8000,
) -> None:
    """Run a live demo: Redis, a worker, beat and a steady mixed workload, with a summary."""
    code = run_demo(DemoOptions(duration=duration, rate=rate, concurrency=concurrency, app=app,
                                data_dir=data_dir, interval=interval,
                                port=port))
    raise typer.Exit(code)


status.register(cli)
cli.add_typer(dlq_app, name="dlq")
cli.add_typer(breakers_app, name="breakers")
cli.add_typer(rabbitmq_app, name="rabbitmq")
cli.command()(check)
cli.add_typer(alerts_app, name="alerts")
cli.command()(autoscale)
cli.command()(errors)
cli.command("serve")(serve_command)
cli.add_typer(token_app, name="token")


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
    app_spec = ctx.parent.params.get("app") if ctx.parent is not None else None
    if isinstance(app_spec, str) and app_spec:  # `warden serve --workers N` re-imports it
        os.environ.setdefault(APP_ENV, app_spec)
    run(list(args), prog_name=f"{parent or 'celery'} warden", obj=ctx.obj)


def main() -> None:
    """Console-script entry point (``warden``): JSON or console logging like the workers."""
    try:
        settings = load_settings()
    except SettingsError:
        pass  # the command itself reports it (exit code 2, no traceback)
    else:
        configure_logging(settings)
    cli(prog_name="warden")


if __name__ == "__main__":  # pragma: no cover
    main()
