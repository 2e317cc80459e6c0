"""Rich tables the read commands print (workers, queues, performance).

Names in them (hostnames, queues, tasks) are untrusted text: cells are built with
:func:`~celery_warden.cli.common.cell`, so they print literally on any console.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

from celery_warden.cli.common import cell
from celery_warden.units import pct, secs


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
            cell(w["hostname"]), cell(status, style), f"{w['heartbeat_age']:.1f}s",
            f"{w['active']}/{w['concurrency']}", str(w["processed"]),
            cell(",".join(w["queues"])), str(w["pid"]), f"{w['rss_bytes'] / 2**20:.0f} MiB",
        )
    if not health["workers"]:
        table.caption = "no worker has sent a heartbeat yet"
    return table


def queues_table(depths: dict[str, int | None] | None, source: str = "broker") -> Table:
    table = Table(title="Queues (messages waiting)", title_justify="left")
    table.add_column("queue")
    table.add_column("depth", justify="right")
    if depths is None:
        table.add_row(cell(f"({source})"), "-")
        return table
    for name, depth in depths.items():
        table.add_row(cell(name), "not declared" if depth is None else str(depth))
    return table


def perf_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=cell(title), title_justify="left")
    for col in ("task", "count", "success", "failure", "retry", "success rate", "retry rate",
                "avg", "p50", "p95", "p99", "throughput/min"):
        table.add_column(col, justify="left" if col == "task" else "right")
    for s in rows:
        table.add_row(
            cell(s["task_name"] or "(all tasks)"), str(s["count"]), str(s["success"]),
            str(s["failure"]), str(s["retry"]), pct(s["success_rate"]), pct(s["retry_rate"]),
            secs(s["avg_duration"]), secs(s["p50"]), secs(s["p95"]), secs(s["p99"]),
            f"{s['throughput_per_minute']:.1f}",
        )
    return table


__all__ = ["perf_table", "queues_table", "workers_table"]
