"""How sure a benchmark's median ratio is: a bootstrap interval over its rounds.

Why: on a shared 2-core VM the per-round ratios of one ``overhead.py`` run spread ±5-8 %, wider
than the 2-3 % margins the issue's targets set; a median printed alone reads as a verdict that
the run cannot give. The interval says whether a target lies outside what the rounds resolve
(PASS or FAIL stands) or inside (this run does not decide it). Deterministic (fixed seed), so a
run's JSON and its printout agree.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence

#: Resamples of the rounds (with replacement) per interval.
RESAMPLES = 2000


def median_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float] | None:
    """The central ``level`` interval of the median of ``values`` resampled with replacement;
    None for fewer than 3 values (no interval worth printing)."""
    if len(values) < 3:
        return None
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values)))
                     for _ in range(RESAMPLES))
    tail = (1 - level) / 2
    return medians[int(tail * RESAMPLES)], medians[min(int((1 - tail) * RESAMPLES),
                                                       RESAMPLES - 1)]


def decided(interval: tuple[float, float] | None, target: float) -> str:
    """Words for the printout: the interval, and whether the target lies outside it."""
    if interval is None:
        return ""
    lo, hi = interval
    where = "inside it: this run does not decide" if lo <= target <= hi else "outside it"
    return f"   [95 % interval of the median {lo:.3f}-{hi:.3f}; target {where}]"


__all__ = ["RESAMPLES", "decided", "median_interval"]
