"""The demo's live summary prints text from workers and the store literally.

Hostnames, queue names and read errors (exception text) reach the summary table and the final
summary; printed through the demo's own console (into a buffer instead of a terminal), markup in
them must neither fail nor vanish, and control characters must be shown, not obeyed.
"""

from __future__ import annotations

import io

from celery_warden.demo.display import Display, summary_table
from celery_warden.demo.summary import Snapshot

HOST = "w[/x][i]@host"
QUEUE = "odd[/q]"
ERROR = "workers: ConnectionError: password=[redacted] bad [/etc/x] \x1b[2J[link=http://e]x"


def snapshot() -> Snapshot:
    return Snapshot(
        elapsed=12.0, sent=10,
        counts={"count": 9, "success": 8, "failure": 1, "retry": 0, "retried": 0},
        recent={"success_rate": 88.9, "retry_rate": 0.0, "p50": 0.01, "p95": 0.02, "p99": 0.03},
        health={"online": 1, "offline": 0, "workers": [{"hostname": HOST, "status": "online"}]},
        depths={QUEUE: 3}, errors=[ERROR],
    )


def display() -> tuple[Display, io.StringIO]:
    """The demo's Display with its console writing into a buffer, as on a terminal."""
    d = Display(rate=5.0)
    buf = io.StringIO()
    d.console.file = buf
    d.console.width = 400
    d.interactive = True
    return d, buf


def test_summary_table_and_final_summary_print_untrusted_text_literally():
    """The live table and the final summary show the hostname, queue name and error text as
    they are (``[redacted]`` included) and the ESC character as ``\\x1b``."""
    d, buf = display()
    d.console.print(summary_table(snapshot(), 5.0))
    d.final(snapshot())
    d.info(f"Redis: {ERROR}")
    out = buf.getvalue()
    assert HOST in out and f"{QUEUE}=3" in out
    shown = ERROR.replace("\x1b", "\\x1b")
    assert out.count(shown) == 3, out
    assert "\x1b" not in out, "no escape sequence reaches the terminal"
