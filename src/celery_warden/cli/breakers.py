"""``warden breakers``: circuit breaker state and operator overrides from a shell."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from celery_warden.cli.common import (
    JsonOpt,
    cell,
    console,
    emit_json,
    fail,
    monitor_for,
    reading,
)
from celery_warden.fleet.breaker import force

breakers_app = typer.Typer(name="breakers", help="Circuit breakers: list, open, close, reset.",
                           no_args_is_help=True)


@breakers_app.command("list")
def list_breakers(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Every breaker the fleet has used: state, window counts, trips."""
    monitor = monitor_for(ctx)
    with reading(monitor):
        breakers = monitor.get_circuit_breakers()
    if as_json:
        emit_json(breakers)
        return
    table = Table(title="Circuit breakers", title_justify="left")
    for col in ("name", "state", "retry after", "calls", "failure rate", "consecutive",
                "trips", "last trip"):
        table.add_column(col)
    for b in breakers:
        w = b["window"]
        rate = "-" if w["failure_rate"] is None else f"{w['failure_rate']:.1f}%"
        after = "-" if b["retry_after"] is None else f"{b['retry_after']:.1f}s"
        table.add_row(cell(b["name"]), cell(b["effective_state"]), after, str(w["calls"]), rate,
                      str(b["consecutive_failures"]), str(b["trips"]),
                      cell(b["last_trip_at"] or "-"))
    if not breakers:
        table.caption = "no breaker has been used yet"
    console().print(table)


def _force(ctx: typer.Context, name: str, action: str) -> None:
    monitor = monitor_for(ctx)
    with reading(monitor):
        try:
            state = force(monitor.settings, name, action)  # type: ignore[arg-type]
        except ValueError as exc:
            fail(f"warden: {exc}", 2)
    typer.echo(f"{name}: {state}")


NameArg = Annotated[str, typer.Argument(help="Breaker name, e.g. payments-api.")]


@breakers_app.command("open")
def force_open(ctx: typer.Context, name: NameArg) -> None:
    """Force a breaker open: tasks that need it are deferred until it is closed or reset."""
    _force(ctx, name, "open")


@breakers_app.command("close")
def force_closed(ctx: typer.Context, name: NameArg) -> None:
    """Force a breaker closed: calls go through whatever the failure rate."""
    _force(ctx, name, "closed")


@breakers_app.command("reset")
def reset(ctx: typer.Context, name: NameArg) -> None:
    """Back to normal operation (closed, counters cleared, not forced)."""
    _force(ctx, name, "reset")


__all__ = ["breakers_app"]
