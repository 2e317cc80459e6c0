"""Fixed log-scale duration histogram: mergeable across minutes, hours and workers.

Why fixed buckets: every process and every minute bucket uses the same boundaries, so merging is
adding counts (``HINCRBY``) and percentiles over any window are exact up to the bucket width. A
t-digest or a sample reservoir cannot be merged that cheaply inside Redis.

Boundaries grow by ``RATIO = 2 ** (1/8)`` from ``FLOOR`` (100 µs). A value is reported as the
geometric middle of its bucket, so the relative error of any percentile is at most
``sqrt(RATIO) - 1`` = 4.4 %, clamped to the observed min and max. ``MAX_INDEX`` covers durations
up to ~4.2 days; anything longer lands in the last bucket. Only non-empty buckets are stored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

FLOOR = 1e-4
RATIO = 2 ** (1 / 8)
MAX_INDEX = 255
RELATIVE_ERROR = math.sqrt(RATIO) - 1
_LOG_RATIO = math.log(RATIO)


def bucket_index(seconds: float) -> int:
    """The bucket a duration falls in (0 for anything at or below ``FLOOR``)."""
    if seconds <= FLOOR:
        return 0
    return min(MAX_INDEX, int(math.log(seconds / FLOOR) / _LOG_RATIO) + 1)


def bucket_value(index: int) -> float:
    """Representative value of a bucket: the geometric middle of its bounds."""
    if index <= 0:
        return FLOOR
    return float(FLOOR * RATIO ** (index - 0.5))


def quantiles(
    counts: Mapping[int, int],
    qs: Iterable[float],
    lo: float | None = None,
    hi: float | None = None,
) -> dict[float, float | None]:
    """Nearest-rank quantiles of a merged histogram, clamped to the observed [lo, hi]."""
    total = sum(counts.values())
    result: dict[float, float | None] = {}
    if total <= 0:
        return {q: None for q in qs}
    ordered = sorted((i, c) for i, c in counts.items() if c > 0)
    for q in qs:
        rank = max(1, math.ceil(q * total))
        seen = 0
        value = bucket_value(ordered[-1][0])
        for index, count in ordered:
            seen += count
            if seen >= rank:
                value = bucket_value(index)
                break
        if lo is not None:
            value = max(value, lo)
        if hi is not None:
            value = min(value, hi)
        result[q] = value
    return result


__all__ = ["FLOOR", "MAX_INDEX", "RATIO", "RELATIVE_ERROR", "bucket_index", "bucket_value",
           "quantiles"]
