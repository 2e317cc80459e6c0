"""``warden serve`` (the API server) and ``warden token create|list|revoke``.

A token is printed once, when created; only its SHA-256 is stored, so a lost token is revoked
and created again, never recovered.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.table import Table

from celery_warden.cli.common import (
    JsonOpt,
    celery_app_of,
    cell,
    console,
    emit_json,
    fail,
    monitor_for,
    reading,
    settings_for,
)
from celery_warden.serve.binding import APP_ENV, ServeRefused, check_bind, is_loopback
from celery_warden.serve.tokens import Scope, TokenStore

token_app = typer.Typer(name="token", no_args_is_help=True,
                        help="API tokens: create (printed once), list, revoke.")


def serve_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to bind (loopback by default; "
                                      "another needs a token to exist).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64,
                                         help="Server processes.")] = 1,
) -> None:
    """Run the monitoring API (FastAPI on uvicorn): /api/v1/..., /api/docs."""
    settings = settings_for(ctx)
    monitor = monitor_for(ctx)
    try:
        with reading(monitor):
            check_bind(settings, host)
    except ServeRefused as exc:
        fail(f"warden: {exc}", 2)
    finally:
        monitor.redis.close()
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"warden serve: http://{shown}:{port}/api/docs (API docs), "
               f"http://{shown}:{port}/api/v1/monitoring/health")
    if settings.api_open_reads:
        where = "loopback only" if is_loopback(host) else f"everyone who can reach {host}"
        typer.echo(f"warden serve: WARDEN_API_OPEN_READS is on: reads need no token "
                   f"({where}); mutations still do")
    if workers > 1 and os.environ.get(APP_ENV) is None and celery_app_of(ctx):
        fail("warden: --workers with `celery -A APP warden serve`: set WARDEN_CELERY_APP=APP", 2)
    # Imported here, not at the top: FastAPI and every route cost ~0.8 s that no other
    # `warden` command should pay (this is not about import order: nothing circles).
    from celery_warden.serve.server import serve

    try:
        serve(settings, host, port, workers, celery_app=celery_app_of(ctx))
    except ServeRefused as exc:
        fail(f"warden: {exc}", 2)


@token_app.command("create")
def create(ctx: typer.Context,
           scope: Annotated[Scope, typer.Option("--scope", help="read, metrics, operate or "
                                                "admin.", case_sensitive=False)],
           name: Annotated[str, typer.Option("--name", help="Who uses it (shown in the "
                                             "audit log).")],
           as_json: JsonOpt = False) -> None:
    """Create a token and print it once (store it now: only its hash is kept)."""
    monitor = monitor_for(ctx)
    try:
        with reading(monitor):
            try:
                secret, info = TokenStore(monitor.redis, monitor.keys).create(name, scope)
            except ValueError as exc:
                fail(f"warden: {exc}", 2)
    finally:
        monitor.redis.close()
    if as_json:
        emit_json({**info.public(), "token": secret})
        return
    typer.echo(secret)
    typer.echo(f"token {info.name!r} (scope {info.scope.value}) created; it is shown only "
               "now: use it as `Authorization: Bearer <token>`", err=True)


@token_app.command("list")
def list_tokens(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Tokens by name and scope (never the tokens themselves)."""
    monitor = monitor_for(ctx)
    try:
        with reading(monitor):
            tokens = TokenStore(monitor.redis, monitor.keys).list()
    finally:
        monitor.redis.close()
    if as_json:
        emit_json([t.public() for t in tokens])
        return
    table = Table(title=f"API tokens: {len(tokens)}", title_justify="left")
    for col in ("name", "scope", "id", "created"):
        table.add_column(col)
    for t in tokens:
        p = t.public()
        table.add_row(cell(p["name"]), cell(p["scope"]), cell(p["id"]), cell(p["created"]))
    if not tokens:
        table.caption = "none: `warden token create --scope read --name NAME`"
    console().print(table)


@token_app.command("revoke")
def revoke(ctx: typer.Context,
           name: Annotated[str, typer.Argument(help="Token name (warden token list).")]) -> None:
    """Revoke a token at once (its dashboard sessions end with it)."""
    monitor = monitor_for(ctx)
    try:
        with reading(monitor):
            removed = TokenStore(monitor.redis, monitor.keys).revoke(name)
    finally:
        monitor.redis.close()
    if not removed:
        fail(f"warden: no token named {name!r}", 1)
    typer.echo(f"token {name!r} revoked")


__all__ = ["serve_command", "token_app"]
