"""``warden alerts``: firing alerts, history, silences, rules, and the evaluator itself.

Text that comes from the fleet (task names, queue names, annotations) is printed literally:
every table cell is a :class:`rich.text.Text`, never parsed as markup. Webhook URLs are shown
masked (the URL is the credential).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from celery_warden.alerts.engine import Evaluator
from celery_warden.alerts.rulefile import RuleError, parse_duration
from celery_warden.alerts.view import AlertsView
from celery_warden.cli.common import (
    JsonOpt,
    celery_app_of,
    console,
    emit_json,
    fail,
    monitor_for,
    reading,
    settings_for,
)

alerts_app = typer.Typer(name="alerts", no_args_is_help=True,
                         help="Alerts: list, history, silence, rules, run the evaluator.")


def _t(value: Any) -> Text:
    return Text("-" if value is None or value == "" else str(value))


@contextmanager
def _view(ctx: typer.Context) -> Iterator[AlertsView]:
    monitor = monitor_for(ctx)
    view = AlertsView(monitor.settings, client=monitor.redis)
    try:
        with reading(monitor):
            yield view
    finally:
        monitor.redis.close()


@alerts_app.command("list")
def list_alerts(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Firing and pending alerts, silences, the evaluator holding the lease, notifications."""
    with _view(ctx) as view:
        data = view.overview()
    if as_json:
        emit_json(data)
        return
    table = Table(title=f"Alerts: {len(data['firing'])} firing, {len(data['pending'])} pending",
                  title_justify="left")
    for col in ("state", "alert", "severity", "subject", "value", "since", "summary"):
        table.add_column(col, no_wrap=col == "alert")
    for a in data["firing"] + data["pending"]:
        table.add_row(_t(a["state"]), _t(a["alertname"]), _t(a["severity"]), _t(a["subject"]),
                      _t(a["value"]), _t(a["starts_at"] or a["active_at"]),
                      _t(a["annotations"].get("description") or a["annotations"].get("summary")))
    if not data["firing"] and not data["pending"]:
        table.caption = "nothing firing"
    out = console()
    out.print(table)
    for s in data["silences"]:
        out.print(Text(f"silenced: {s['rule']} (scope {s['scope']}) until {s['until_at']} "
                       f"[{s['id']}] {s['comment']}"))
    ev = data["evaluator"]
    out.print(Text(f"evaluator: {ev['owner'] or 'none holds the lease'}, every "
                   f"{ev['interval_seconds']:g}s"))
    n = data["notifications"]
    out.print(Text(f"notifications: sent {n['sent'] or 0}, failed {n['failed'] or 0}, "
                   f"queued {n['queued']}"))
    for f in n["recent_failures"]:
        out.print(Text(f"  failed {f['at']} {f['notifier']} -> {f['target']}: {f['alertname']} "
                       f"{f['status']}: {f['error']} ({f['attempts']} attempts)"))
    if data["error"]:
        out.print(Text(f"rules file refused: {data['error']}"))


@alerts_app.command("history")
def history(ctx: typer.Context, limit: Annotated[int, typer.Option(
                "--limit", "-n", min=1, max=1000, help="Entries, newest first.")] = 50,
            failed: Annotated[bool, typer.Option(
                "--failed", help="Notifications that failed every attempt instead.")] = False,
            as_json: JsonOpt = False) -> None:
    """Alert transitions (firing, resolved), or failed notifications with --failed."""
    with _view(ctx) as view:
        rows = view.failures(limit) if failed else view.history(limit)
    if as_json:
        emit_json(rows)
        return
    if failed:
        table = Table(title="Failed notifications", title_justify="left")
        for col in ("at", "notifier", "target", "alert", "status", "attempts", "error"):
            table.add_column(col)
        for f in rows:
            table.add_row(*(_t(f[k]) for k in ("at", "notifier", "target", "alertname",
                                                "status", "attempts", "error")))
    else:
        table = Table(title="Alert history", title_justify="left")
        for col in ("at", "alert", "subject", "transition", "value", "notified", "note"):
            table.add_column(col)
        for h in rows:
            note = "silenced" if h["silenced"] else h.get("reason", "")
            table.add_row(_t(h["at"]), _t(h["alertname"]), _t(h["subject"]),
                          _t(f"{h['from']} -> {h['to']}"), _t(h["value"]),
                          _t("yes" if h["notified"] else "no"), _t(note))
    if not rows:
        table.caption = "nothing yet"
    console().print(table)


@alerts_app.command("silence")
def silence(ctx: typer.Context,
            rule: Annotated[str, typer.Argument(help="Rule name or glob, e.g. CeleryWorkerDown.")],
            duration: Annotated[str, typer.Option("--for", help="How long, e.g. 30m, 2h.")],
            scope: Annotated[str, typer.Option(
                "--scope", help="Only subjects matching this glob.")] = "*",
            comment: Annotated[str, typer.Option("--comment", help="Why.")] = "",
            as_json: JsonOpt = False) -> None:
    """Silence a rule: it keeps evaluating, notifications wait until the silence ends."""
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        fail(f"warden: --for: {exc}", 2)
    with _view(ctx) as view:
        try:
            entry = view.silence(rule, seconds, scope, comment)
        except ValueError as exc:
            fail(f"warden: {exc}", 2)
    if as_json:
        emit_json(entry)
        return
    console().print(Text(f"silenced {entry['rule']} (scope {entry['scope']}) until "
                         f"{entry['until_at']} [{entry['id']}]"))


@alerts_app.command("unsilence")
def unsilence(ctx: typer.Context,
              silence_id: Annotated[str, typer.Argument(help="Silence id (warden alerts list).")]
              ) -> None:
    """End a silence now."""
    with _view(ctx) as view:
        removed = view.unsilence(silence_id)
    if not removed:
        fail(f"warden: no silence {silence_id!r}", 1)
    typer.echo(f"silence {silence_id} removed")


@alerts_app.command("rules")
def rules(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The rules in force (defaults, rules file, switched off); exit 2 if the file is bad."""
    with _view(ctx) as view:
        data = view.rules()
    if data["error"]:
        fail(f"warden: {data['error']}", 2)
    if as_json:
        emit_json(data["rules"])
        return
    table = Table(title="Alert rules", title_justify="left")
    for col in ("rule", "metric", "scope", "condition", "window", "for", "severity", "on"):
        table.add_column(col, no_wrap=col in ("rule", "metric"))
    for r in data["rules"]:
        table.add_row(_t(r["name"]), _t(r["metric"]), _t(r["scope"]),
                      _t(f"{r['comparison']} {r['threshold']:g} {r['unit']}"),
                      _t(f"{r['window']}s" if r["window"] else None), _t(f"{r['for']:g}s"),
                      _t(r["severity"]), _t("yes" if r["enabled"] else "off"))
    console().print(table)


@alerts_app.command("run")
def run(ctx: typer.Context) -> None:
    """Run the alert evaluator in the foreground until Ctrl-C or SIGTERM.

    One evaluator per fleet holds the lease; start more for failover."""
    settings = settings_for(ctx)
    try:
        evaluator = Evaluator(settings, app=celery_app_of(ctx))
    except RuleError as exc:
        fail(f"warden: {exc}", 2)

    def _terminate(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    targets = ", ".join(f"{n.name} ({n.target})" for n in evaluator.notifiers) or "none"
    typer.echo(f"warden alerts: evaluating {sum(r.enabled for r in evaluator.rules)} rules "
               f"every {settings.alert_interval:g}s; notifying {targets}")
    with suppress(KeyboardInterrupt):
        evaluator.run_forever()
    typer.echo("warden alerts: stopped")


__all__ = ["alerts_app"]
