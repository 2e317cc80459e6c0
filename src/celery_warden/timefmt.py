"""How times leave Warden: ISO 8601 in UTC with a ``Z`` (API, CLI, dashboard, alerts)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

#: Timestamps formatted by :func:`iso`'s own arithmetic (1970 to 2096); outside it (or for a
#: value ``datetime`` refuses) the formatting is ``datetime``'s own.
_FAST_RANGE = (0.0, 4e9)
#: ``YYYY-MM-DDTHH:MM:SS`` by the 10 digits of a store time's whole second: a dict lookup by the
#: text is ~half the cost of parsing it (a search page formats 200 times; ~1.5 µs each before).
_HEADS: dict[str, str] = {}
#: Heads kept at most (~5 MB; cleared when full: a cache, any head can be made again).
_MAX_HEADS = 65_536


def iso(ts: Any) -> str | None:
    """Epoch seconds (a number or the string the store keeps) as ``2026-11-28T03:48:12.5Z``;
    ``None`` for a missing or unreadable value.

    Exactly ``datetime.fromtimestamp(value, UTC).isoformat()`` with ``Z`` for ``+00:00``, which
    cost ~2 µs (more on a busy machine) and a search page formats 200 of them: the seconds part
    is cached per whole second (a task's times share a few) and the microseconds are rounded
    the way ``datetime`` rounds them (half to even)."""
    if type(ts) is str and len(ts) == 17 and ts[10] == ".":
        # How the store writes a time ("%.6f", 2001-2096): the digits are the microseconds
        # datetime would round to (the float is within 0.25 µs of them). The date and time of
        # the whole second come from :data:`_HEADS` by its 10 digits, which hold only heads
        # checked once (ASCII digits, in range): a hit needs only the fraction checked.
        head = _HEADS.get(ts[:10])
        if head is None and ts.isascii() and "1000000000" <= ts < "4" and ts[:10].isdigit():
            if len(_HEADS) >= _MAX_HEADS:
                _HEADS.clear()
            head = _HEADS[ts[:10]] = _second(int(ts[:10]))
        digits = ts[11:]
        if head is not None and digits.isdigit() and digits.isascii():
            return f"{head}.{digits}Z" if digits != "000000" else f"{head}Z"
    if ts is None or ts == "":
        return None
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
