"""Time windows for metric queries, and which buckets cover them.

A window like ``"5m"``, ``"1h"``, ``"24h"`` or ``"7d"`` ends now. Windows up to
``MINUTES_ONLY_UP_TO`` read per-minute buckets only; longer ones read hourly roll-ups for the
whole hours inside the window and minute buckets for the partial hours at both ends, so a 7-day
query reads at most ~290 keys instead of 10,080. Resolution is one minute: the minute containing
the window's start is counted whole.
"""

from __future__ import annotations

import re
from datetime import timedelta

from celery_warden.errors import WindowError
from celery_warden.keys import BLOCK, HOUR, MINUTE, Keys, minute_of

MINUTES_ONLY_UP_TO = 6 * HOUR
_UNITS = {"s": 1, "m": MINUTE, "h": HOUR, "d": 24 * HOUR, "w": 7 * 24 * HOUR}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def parse_window(window: str | int | float | timedelta, longest: int | None = None,
                 limit_name: str = "the retention") -> int:
    """Seconds in a window given as ``"15m"``, ``3600``, or a ``timedelta``.

    ``longest`` refuses windows the store cannot answer (data older than its retention is gone)
    — and keeps one query from reading millions of buckets."""
    if isinstance(window, timedelta):
        seconds = window.total_seconds()
    elif isinstance(window, int | float):
        seconds = float(window)
    else:
        match = _PATTERN.match(window)
        if not match:
            raise WindowError(
                f"invalid window {window!r}: expected a number of seconds or e.g. 5m, 1h, 24h, 7d"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds < MINUTE:
        raise WindowError(f"invalid window {window!r}: the shortest window is 1 minute")
    if longest is not None and seconds > longest:
        raise WindowError(f"invalid window {window!r}: longer than {limit_name} "
                         f"({longest}s), beyond which nothing is kept")
    return int(seconds)


def cover(start: float, end: float) -> list[tuple[bool, int]]:
    """The (hourly?, period start) pairs whose buckets together cover [start, end]."""
    first_minute = minute_of(start)
    last_minute = minute_of(end)
    if end - start <= MINUTES_ONLY_UP_TO:
        return [(False, m) for m in range(first_minute, last_minute + 1, MINUTE)]
    first_hour = -(-first_minute // HOUR) * HOUR  # first whole hour inside the window
    last_hour = (last_minute // HOUR) * HOUR  # start of the partial hour at the end
    out = [(False, m) for m in range(first_minute, first_hour, MINUTE)]
    out += [(True, h) for h in range(first_hour, last_hour, HOUR)]
    out += [(False, m) for m in range(last_hour, last_minute + 1, MINUTE)]
    return out


def bucket_keys(keys: Keys, name: str, start: float, end: float) -> list[str]:
    """Keys of one task name's minute and hour buckets that together cover [start, end]."""
    return [keys.hour_bucket(name, t) if hourly else keys.minute_bucket(name, t)
            for hourly, t in cover(start, end)]


def fleet_keys(keys: Keys, start: float, end: float) -> list[str]:
    """The same cover from the fleet-wide buckets (every name folded in)."""
    return [keys.fleet_hour(t) if hourly else keys.fleet_minute(t)
            for hourly, t in cover(start, end)]


def summary_cover(start: float, end: float) -> list[tuple[int, int]]:
    """(width, period start) of the cross-name summaries covering [start, end]: the widest
    aligned period that fits at each step — hours beyond ``MINUTES_ONLY_UP_TO``, 10-minute
    blocks, minutes at the ends — so one hour reads ~15-24 hashes instead of 61."""
    widths = (HOUR, BLOCK, MINUTE) if end - start > MINUTES_ONLY_UP_TO else (BLOCK, MINUTE)
    t, last = minute_of(start), minute_of(end) + MINUTE
    out = []
    while t < last:
        width = next(w for w in widths if t % w == 0 and t + w <= last)
        out.append((width, t))
        t += width
    return out


def summary_keys(keys: Keys, start: float, end: float) -> list[str]:
    """Keys of the cross-name summaries in :func:`summary_cover`."""
    build = {HOUR: keys.summary_hour, BLOCK: keys.summary_block, MINUTE: keys.summary_minute}
    return [build[width](t) for width, t in summary_cover(start, end)]


__all__ = ["bucket_keys", "cover", "fleet_keys", "parse_window", "summary_cover", "summary_keys"]
