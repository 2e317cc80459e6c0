"""Time windows for metric queries, and which buckets cover them.

A window like ``"5m"``, ``"1h"``, ``"24h"`` or ``"7d"`` ends now. Windows up to
``MINUTES_ONLY_UP_TO`` read 10-minute blocks and minute buckets at the ends (one hour: 7-16
hashes, not 61); longer ones read hourly roll-ups for the whole hours inside the window and
blocks and minutes for the partial hours at both ends, so a 7-day query reads at most ~200
keys (~290 without blocks) instead of 10,080. Blocks are read only from ``P:blocks:since`` on
(older versions wrote none: :mod:`celery_warden.block_keys`). Resolution is one minute: the
minute containing the window's start is counted whole.
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


def cover(start: float, end: float, blocks_from: float | None = None) -> list[tuple[int, int]]:
    """(width, period start) of the buckets covering [start, end]: the widest aligned period
    that fits at each step — hours only beyond ``MINUTES_ONLY_UP_TO``, 10-minute blocks from
    ``blocks_from`` on (``None``: none; see :attr:`~celery_warden.keys.Keys.blocks_since`),
    minutes at the ends — so one hour reads 7-16 hashes instead of 61."""
    hours = end - start > MINUTES_ONLY_UP_TO
    t, last = minute_of(start), minute_of(end) + MINUTE
    out = []
    while t < last:
        if hours and t % HOUR == 0 and t + HOUR <= last:
            width = HOUR
        elif (blocks_from is not None and t >= blocks_from and t % BLOCK == 0
              and t + BLOCK <= last):
            width = BLOCK
        else:
            width = MINUTE
        out.append((width, t))
        t += width
    return out


def bucket_keys(keys: Keys, name: str, start: float, end: float,
                blocks_from: float | None = None) -> list[str]:
    """Keys of one task name's buckets that together cover [start, end] (:func:`cover`)."""
    build = {HOUR: keys.hour_bucket, BLOCK: keys.name_block, MINUTE: keys.minute_bucket}
    return [build[width](name, t) for width, t in cover(start, end, blocks_from)]


def fleet_keys(keys: Keys, start: float, end: float,
               blocks_from: float | None = None) -> list[str]:
    """The same cover from the fleet-wide buckets (every name folded in)."""
    build = {HOUR: keys.fleet_hour, BLOCK: keys.fleet_block, MINUTE: keys.fleet_minute}
    return [build[width](t) for width, t in cover(start, end, blocks_from)]


def summary_cover(start: float, end: float) -> list[tuple[int, int]]:
    """(width, period start) of the cross-name summaries covering [start, end]: :func:`cover`
    with 10-minute blocks everywhere (the ``P:s10`` summaries came with the minute ones)."""
    return cover(start, end, 0)


def summary_keys(keys: Keys, start: float, end: float) -> list[str]:
    """Keys of the cross-name summaries in :func:`summary_cover`."""
    build = {HOUR: keys.summary_hour, BLOCK: keys.summary_block, MINUTE: keys.summary_minute}
    return [build[width](t) for width, t in summary_cover(start, end)]


__all__ = ["bucket_keys", "cover", "fleet_keys", "parse_window", "summary_cover", "summary_keys"]
