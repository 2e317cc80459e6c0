"""``warden dlq ...`` and ``warden errors``: the dead letter queue and error groups from a shell.

Registered on the main ``warden`` app by :mod:`celery_warden.cli.main`. Mutating commands (process,
requeue, park, discard, expire) print what they did as counts, so a script can check them.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from celery_warden.cli.common import (
    JsonOpt,
    WindowOpt,
    cell,
    check_window,
    console,
    emit_json,
    fail,
    monitor_for,
    reading,
)
from celery_warden.record.windows import parse_window

dlq_app = typer.Typer(name="dlq", help="The dead letter queue: list, show, process, requeue, "
                      "park, discard, expire.", no_args_is_help=True)


def _age(ts: float) -> str:
    seconds = max(0.0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


@dlq_app.command("list")
def list_entries(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Entries to show.")] = 50,
    task_name: Annotated[str | None, typer.Option("--task", help="Only this task name.")] = None,
    reason: Annotated[str | None, typer.Option(help="Only this reason code.")] = None,
    status: Annotated[str | None, typer.Option(help="pending, claimed or parked.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Entries, newest first."""
    monitor = monitor_for(ctx)
    with reading(monitor):
        entries = monitor.dlq.list_entries(limit=limit, task_name=task_name, reason=reason,
                                           status=status)
        stats = monitor.dlq.stats()
    if as_json:
        emit_json({"stats": stats, "entries": [monitor.dlq.view(e) for e in entries],
                   "skipped": entries.skipped})
        return
    skipped = (f"{entries.skipped} malformed entries not shown (ids in the warning above; "
               "see `warden dlq show ID`, remove with `warden dlq discard ID`)"
               if entries.skipped else None)
    table = Table(title=f"Dead letter queue: {stats['size']} entries", title_justify="left",
                  caption=skipped, caption_justify="left")
    for col in ("id", "task", "reason", "status", "error", "failures", "requeues", "age"):
        table.add_column(col)
    for e in entries:
        v = monitor.dlq.view(e)  # secrets in the failure text masked
        table.add_row(cell(e.id), cell(e.name or "?"), cell(e.reason), cell(e.status),
                      cell(f"{v['exc_type']}: {(v['exc_message'] or '')[:60]}"),
                      str(e.failures), str(e.requeues), _age(e.last_failed))
    console().print(table)


@dlq_app.command()
def show(ctx: typer.Context, entry_id: str, as_json: JsonOpt = False) -> None:
    """One entry with its message, error, traceback and retry history."""
    monitor = monitor_for(ctx)
    with reading(monitor):
        entry = monitor.dlq.get(entry_id)
    if entry is None:
        fail(f"warden: no DLQ entry {entry_id}", 1)
    data = monitor.dlq.view(entry)
    if as_json:
        emit_json(data)
        return
    out = console()
    tb = data.pop("traceback", None)
    table = Table(title=cell(f"DLQ entry {entry_id}"), show_header=False,
                  title_justify="left")
    table.add_column("field")
    table.add_column("value")
    for key, value in data.items():
        if value not in (None, [], {}):
            table.add_row(key, cell(value))
    out.print(table)
    if tb:
        out.print(cell(tb))


@dlq_app.command()
def process(
    ctx: typer.Context,
    max_items: Annotated[int, typer.Option(min=1, max=100_000)] = 100,
    requeue: Annotated[bool, typer.Option("--requeue/--park",
                                          help="Requeue with backoff, or park for review.")]
        = True,
    discard_older_than: Annotated[str | None, typer.Option(
        help="First discard entries older than this (e.g. 3d).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Apply a strategy to up to MAX_ITEMS ready entries (the spec's POST /dlq/process)."""
    older = None
    if discard_older_than:
        check_window(discard_older_than)
        older = parse_window(discard_older_than)
    monitor = monitor_for(ctx)
    with reading(monitor):
        counts = monitor.dlq.process(max_items=max_items, requeue=requeue,
                                     discard_older_than=older)
    if as_json:
        emit_json(counts)
    else:
        typer.echo(" ".join(f"{k}={v}" for k, v in counts.items()))


@dlq_app.command("requeue")
def requeue_entry(ctx: typer.Context, entry_id: str,
                  force: Annotated[bool, typer.Option(help="Requeue a parked entry too.")]
                  = False) -> None:
    """Requeue one entry now; prints the new task id."""
    monitor = monitor_for(ctx)
    with reading(monitor):
        new_id = monitor.dlq.requeue(entry_id, force=force)
    if new_id is None:
        fail(f"warden: entry {entry_id} was not requeued (unknown, parked without --force, "
             "already requeued, or not replayable)", 1)
    typer.echo(new_id)


@dlq_app.command()
def park(ctx: typer.Context, entry_id: str,
         note: Annotated[str | None, typer.Option(help="Why it is parked.")] = None) -> None:
    """Hold an entry for manual review (never requeued automatically)."""
    monitor = monitor_for(ctx)
    with reading(monitor):
        done = monitor.dlq.park(entry_id, note)
    if not done:
        fail(f"warden: no DLQ entry {entry_id}", 1)
    typer.echo(f"parked {entry_id}")


@dlq_app.command()
def discard(
    ctx: typer.Context,
    entry_id: Annotated[str | None, typer.Argument(help="One entry id.")] = None,
    older_than: Annotated[str | None, typer.Option(help="Every entry older than, e.g. 3d.")]
        = None,
) -> None:
    """Remove one entry, or every entry older than a threshold."""
    if (entry_id is None) == (older_than is None):
        fail("warden: give an ENTRY_ID or --older-than (one of them)", 2)
    monitor = monitor_for(ctx)
    with reading(monitor):
        if entry_id is not None:
            if not monitor.dlq.discard(entry_id):
                fail(f"warden: no DLQ entry {entry_id}", 1)
            typer.echo("discarded 1")
            return
        assert older_than is not None
        check_window(older_than)
        typer.echo(f"discarded {monitor.dlq.discard_older_than(parse_window(older_than))}")


@dlq_app.command()
def expire(ctx: typer.Context) -> None:
    """Remove entries older than WARDEN_DLQ_MAX_AGE (what the beat task does)."""
    monitor = monitor_for(ctx)
    with reading(monitor):
        typer.echo(f"expired {monitor.dlq.expire()}")


def errors(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    window: WindowOpt = "24h",
    as_json: JsonOpt = False,
) -> None:
    """Failures grouped by cause (exception type, normalised message, innermost own frame)."""
    check_window(window)
    monitor = monitor_for(ctx)
    with reading(monitor):
        groups = monitor.get_error_groups(limit=limit, window=window)
    if as_json:
        emit_json(groups)
        return
    table = Table(title=cell(f"Error groups seen in the last {window}"), title_justify="left")
    for col in ("fingerprint", "count", "in window", "error", "where", "tasks", "last seen"):
        table.add_column(col)
    for g in groups:
        table.add_row(cell(g["fingerprint"]), str(g["count"]),
                      str(g.get("count_in_window", "-")),
                      cell(f"{g['exc_type']}: {(g['message'] or '')[:60]}"),
                      cell(g["frame"] or "?"), cell(", ".join(g["task_names"])),
                      _age(g["last_seen"] or 0))
    console().print(table)


__all__ = ["dlq_app", "errors"]
