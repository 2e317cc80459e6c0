"""Rendering a :class:`~celery_warden.demo.summary.Snapshot`: a rich table on a terminal,
plain lines otherwise, and the final summary.

Hostnames, queue names and error texts come from workers and the store: untrusted, so they are
printed literally (a console without markup and emoji, cells as :class:`~rich.text.Text`) with
control characters shown as escapes (:func:`~celery_warden.units.printable`).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from celery_warden.demo.summary import Snapshot
from celery_warden.units import pct, percent, printable, secs


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _workers_text(health: dict[str, Any] | None) -> str:
    if health is None:
        return "? online, ? offline"
    return f"{health['online']} online, {health['offline']} offline"


def _queues_text(depths: dict[str, int | None] | None) -> str:
    if depths is None:
        return "?"
    return " ".join(f"{name}={'-' if d is None else d}" for name, d in depths.items())


def _alerts_text(alerts: list[str] | None, lead: str = "") -> str:
    if alerts is None:
        return ""
    return lead + (f"{len(alerts)} firing ({'; '.join(alerts)})" if alerts else "none firing")


def summary_line(snap: Snapshot) -> str:
    """One line per refresh when stdout is not a terminal (logs, CI, tests)."""
    r = snap.recent or {}
    throughput = "-" if snap.throughput is None else f"{snap.throughput:.1f}"
    line = (
        f"[{_clock(snap.elapsed)}] sent {snap.sent} | throughput {throughput} tasks/s | "
        f"finished {'-' if snap.finished is None else snap.finished} | "
        f"success {pct(r.get('success_rate'))} | p95 {secs(r.get('p95'))} | "
        f"retry rate {pct(r.get('retry_rate'))} | workers {_workers_text(snap.health)} | "
        f"queues {_queues_text(snap.depths)}{_alerts_text(snap.alerts, ' | alerts ')}"
    )
    return "\n".join([line, *(f"  ! read error: {e}" for e in snap.errors)])


def summary_table(snap: Snapshot, rate: float) -> Table:
    r = snap.recent or {}
    table = Table(title=f"Celery Warden demo · {_clock(snap.elapsed)} · Ctrl-C to stop",
                  title_justify="left", show_header=False, min_width=60)
    table.add_column("metric", style="bold")
    table.add_column("value")
    sent = f"{snap.sent} (target {rate:g}/s)"
    if snap.send_errors:
        sent += f", {snap.send_errors} failed"
    table.add_row("tasks sent", sent)
    table.add_row("throughput", "-" if snap.throughput is None
                  else f"{snap.throughput:.1f} tasks/s")
    table.add_row("finished", "-" if snap.finished is None else f"{snap.finished} since start")
    table.add_row("success rate (5m)", pct(r.get("success_rate")))
    table.add_row("retry rate (5m)", pct(r.get("retry_rate")))
    table.add_row("p95 duration (5m)", secs(r.get("p95")))
    workers = _workers_text(snap.health)
    if snap.health:
        online = [w["hostname"] for w in snap.health["workers"] if w["status"] == "online"]
        if online:
            workers += f" ({', '.join(online)})"
    table.add_row("workers", Text(printable(workers)))
    table.add_row("queue depths", Text(printable(_queues_text(snap.depths))))
    if snap.alerts is not None:
        table.add_row("alerts", Text(printable(_alerts_text(snap.alerts))))
    for error in snap.errors:
        table.add_row(Text("read error", style="red"), Text(printable(error), style="red"))
    return table


def final_lines(snap: Snapshot) -> list[str]:
    lines = [f"ran {snap.elapsed:.1f}s; sent {snap.sent} tasks"
             + (f" ({snap.send_errors} sends failed)" if snap.send_errors else "")]
    c = snap.counts
    if c is not None:
        avg = c["count"] / snap.elapsed if snap.elapsed > 0 else 0.0
        success_rate = percent(c["success"], c["count"])
        retry_rate = percent(c["retried"], c["count"])
        lines += [
            f"finished {c['count']} (success {c['success']}, failure {c['failure']}, "
            f"retries {c['retry']}); average throughput {avg:.1f} tasks/s",
            f"success rate {pct(success_rate)} | retry rate {pct(retry_rate)}",
        ]
    if snap.recent is not None:
        r = snap.recent
        lines.append(f"durations over the run's minutes: p50 {secs(r['p50'])} | "
                     f"p95 {secs(r['p95'])} | p99 {secs(r['p99'])}")
    lines.append(f"workers {_workers_text(snap.health)} | queues left "
                 f"{_queues_text(snap.depths)}")
    lines += [f"read error: {e}" for e in snap.errors]
    return lines


class Display:
    """rich Live on a terminal; one plain line per refresh otherwise."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.console = Console(highlight=False, markup=False, emoji=False)
        self.interactive = self.console.is_terminal
        self.live: Live | None = None

    def info(self, message: str) -> None:
        with contextlib.suppress(OSError):  # a closed terminal (SIGHUP) must not stop clean-up
            if self.interactive:
                self.console.print(Text(printable(message)))
            else:
                print(message, flush=True)

    def start(self) -> None:
        if self.interactive:
            self.live = Live(console=self.console, auto_refresh=False, transient=False,
                             redirect_stdout=False, redirect_stderr=False)
            self.live.start()

    def update(self, snap: Snapshot) -> None:
        with contextlib.suppress(OSError):
            if self.live is not None:
                self.live.update(summary_table(snap, self.rate), refresh=True)
            else:
                print(summary_line(snap), flush=True)

    def stop(self) -> None:
        if self.live is not None:
            live, self.live = self.live, None
            with contextlib.suppress(OSError):
                live.stop()

    def final(self, snap: Snapshot) -> None:
        lines = final_lines(snap)
        with contextlib.suppress(OSError):
            if self.interactive:
                table = Table(title="Final summary", title_justify="left", show_header=False)
                table.add_column("")
                for line in lines:
                    table.add_row(Text(printable(line), style="red" if "error" in line else ""))
                self.console.print(table)
            else:
                print("final summary:\n" + "\n".join(f"  {line}" for line in lines),
                      flush=True)


def error(message: str) -> None:
    with contextlib.suppress(OSError):
        print(f"warden demo: {message}", file=sys.stderr, flush=True)
