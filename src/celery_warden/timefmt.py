"""How times leave Warden: ISO 8601 in UTC with a ``Z`` (API, CLI, dashboard, alerts)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

#: Timestamps formatted by :func:`iso`'s own arithmetic (1970 to 2096); outside it (or for a
#: value ``datetime`` refuses) the formatting is ``datetime``'s own.
_FAST_RANGE = (0.0, 4e9)


def iso(ts: Any) -> str | None:
    """Epoch seconds (a number or the string the store keeps) as ``2026-11-28T03:48:12.5Z``;
    ``None`` for a missing or unreadable value.

    Exactly ``datetime.fromtimestamp(value, UTC).isoformat()`` with ``Z`` for ``+00:00``, which
    cost ~2 µs (more on a busy machine) and a search page formats 200 of them: the seconds part
    is cached per whole second (a task's times share a few) and the microseconds are rounded
    the way ``datetime`` rounds them (half to even)."""
    if ts is None or ts == "":
        return None
    if type(ts) is str and len(ts) == 17 and ts[10] == "." and ts.isascii() and (
            "1000000000" <= ts < "4" and ts[:10].isdigit() and ts[11:].isdigit()):
        # How the store writes a time ("%.6f", 2001-2096): the digits are the microseconds
        # datetime would round to (the float is within 0.25 µs of them).
        digits = ts[11:]
        head = _second(int(ts[:10]))
        return f"{head}.{digits}Z" if digits != "000000" else f"{head}Z"
    try:
        value = float(ts)
    except (TypeError, ValueError):
        return None
    if not _FAST_RANGE[0] <= value < _FAST_RANGE[1]:
        try:  # nan, inf, 1e20: a damaged record's time reads as unknown, never a 500
            return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")
        except (OverflowError, OSError, ValueError):
            return None
    frac, whole = math.modf(value)
    us = round(frac * 1e6)
    if us >= 1_000_000:
        whole, us = whole + 1, us - 1_000_000
    head = _second(int(whole))
    return f"{head}.{us:06d}Z" if us else f"{head}Z"


@lru_cache(maxsize=8192)
def _second(whole: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of a whole epoch second."""
    return datetime.fromtimestamp(whole, UTC).isoformat()[:19]


__all__ = ["iso"]
