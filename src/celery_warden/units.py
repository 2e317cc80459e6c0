"""How numbers and text read to a person: percentages, durations, counts, and text from
tasks made safe to print (CLI, demo, dashboard)."""

from __future__ import annotations

import re
from typing import Any

# Control characters (ESC, CR, BEL, ...; newline and tab excepted) and bidirectional overrides.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def pct(value: float | None) -> str:
    """A percentage (Warden's rates are 0..100), ``-`` when unknown."""
    return "-" if value is None else f"{value:.1f}%"


def percent(part: int, whole: int) -> float | None:
    """``part`` in percent of ``whole`` (None when there is no whole)."""
    return 100.0 * part / whole if whole else None


def secs(value: float | None) -> str:
    """A duration: milliseconds below one second, seconds above; ``-`` when unknown."""
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def num(value: Any) -> str:
    return "-" if value is None else str(value)


def printable(value: Any) -> str:
    """``str(value)`` with control characters shown as escapes (``\\x1b``, ``\\u202e``).

    Text from tasks (exception messages, tracebacks, names, hostnames) is untrusted: an escape
    sequence in it would otherwise be obeyed by the terminal (clear the screen, rewrite a line,
    hide a link) instead of being shown. Newlines and tabs are kept.
    """
    text = str(value)
    if not _UNPRINTABLE.search(text):
        return text
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                            else f"\\u{ord(m.group()):04x}", text)


__all__ = ["num", "pct", "percent", "printable", "secs"]
