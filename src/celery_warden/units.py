"""How numbers read to a person: percentages, durations, counts (CLI, demo, dashboard)."""

from __future__ import annotations

from typing import Any


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


__all__ = ["num", "pct", "percent", "secs"]
