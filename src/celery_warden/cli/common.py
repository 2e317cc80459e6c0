"""What every ``warden`` command shares: settings and monitor from the context, clear failures,
JSON output, common options.

Exit codes: 0 success, 1 a runtime failure (Redis unreachable, unknown task id), 2 a usage or
configuration error (an invalid setting: the message names the variable, never a traceback).

Everything printed comes from tasks, workers and the store — exception messages, tracebacks,
task names, hostnames, queue and breaker names — and is untrusted: it is printed literally, never
as Rich markup (``[/etc/x]`` would end the command with a ``MarkupError``, ``[redacted]`` would
vanish as a style tag) or emoji codes, and with control characters shown as escapes
(:func:`cell`, and a console with markup and emoji off).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Annotated, Any, NoReturn

import redis
import typer
from celery import Celery
from kombu.exceptions import OperationalError
from rich.console import Console
from rich.text import Text

from celery_warden.errors import SettingsError, WindowError
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.record.windows import parse_window
from celery_warden.redaction import mask_url
from celery_warden.services import services_for
from celery_warden.settings import WardenSettings, load_settings
from celery_warden.units import printable

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
WindowOpt = Annotated[str, typer.Option("--window", "-w", help="Time window, e.g. 5m, 1h, 7d.")]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` to stderr and exit with ``code`` (no traceback)."""
    typer.echo(message, err=True)
    raise typer.Exit(code)


def celery_app_of(ctx: typer.Context) -> Celery | None:
    """The Celery app when invoked as ``celery -A proj warden ...`` (else ``None``)."""
    obj = ctx.obj
    found = getattr(obj, "app", None) if obj is not None else None
    return found if isinstance(found, Celery) else None


def settings_for(ctx: typer.Context) -> WardenSettings:
    """Settings of the Warden installed on Celery's app, else from the environment.

    A :class:`SettingsError` ends the command with its message on stderr and exit code 2.
    """
    app = celery_app_of(ctx)
    services = services_for(app) if app is not None else None
    if services is not None:
        return services.settings
    try:
        return load_settings()
    except SettingsError as exc:
        fail(f"warden: {exc}", 2)


def monitor_for(ctx: typer.Context) -> CeleryMonitor:
    return CeleryMonitor(settings_for(ctx), app=celery_app_of(ctx))


@contextlib.contextmanager
def reading(monitor: CeleryMonitor) -> Iterator[None]:
    """Turn "Redis/broker unreachable" into one clear line and exit code 1."""
    try:
        yield
    except WindowError as exc:  # longer than the retention (known only with the settings)
        fail(f"warden: --window: {exc}", 2)
    except (redis.RedisError, OperationalError, ConnectionError, TimeoutError) as exc:
        fail(
            f"warden: cannot read from Redis at {mask_url(monitor.settings.redis_url)}: "
            f"{type(exc).__name__}: {exc}",
            1,
        )


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str, sort_keys=False))


def console() -> Console:
    """A console that prints strings literally: no markup, no emoji codes, no highlighting."""
    return Console(highlight=False, markup=False, emoji=False)


def cell(value: object, style: str = "") -> Text:
    """Untrusted text for a table cell, a title or a line: literal, whatever console prints
    it, with control characters shown as escapes."""
    return Text(printable(value), style=style)


def check_window(window: str) -> None:
    try:
        parse_window(window)
    except ValueError as exc:
        fail(f"warden: --window: {exc}", 2)


__all__ = ["JsonOpt", "WindowOpt", "celery_app_of", "cell", "check_window", "console",
           "emit_json", "fail", "monitor_for", "reading", "settings_for"]
