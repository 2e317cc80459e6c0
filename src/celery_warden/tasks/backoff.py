"""Exponential backoff with jitter, as a value object.

Formula, for the ``n``-th retry (``n`` = retries already made, starting at 0)::

    raw(n)   = min(cap, base * factor ** n)
    "none":    delay = raw(n)                       (deterministic: testable exactly)
    "full":    delay = uniform(0, raw(n))           (default; AWS "full jitter")
    "equal":   delay = raw(n) / 2 + uniform(0, raw(n) / 2)

Full jitter spreads a burst of simultaneous failures over the whole interval, which is what
prevents a retry stampede against a recovering service; "equal" keeps a guaranteed minimum wait.

Why not Celery's ``retry_backoff``: it works in whole seconds (``randrange``), has no cap on
``base``, no per-call override, and no deterministic mode to test against.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Any, Literal

Jitter = Literal["full", "equal", "none"]

DEFAULT_BASE = 1.0
DEFAULT_FACTOR = 2.0
DEFAULT_CAP = 300.0
DEFAULT_JITTER: Jitter = "full"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff parameters; :meth:`delay` computes one retry's countdown."""

    base: float = DEFAULT_BASE
    factor: float = DEFAULT_FACTOR
    cap: float = DEFAULT_CAP
    jitter: Jitter = DEFAULT_JITTER

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0:
            raise ValueError("backoff base and cap must be >= 0")
        if self.factor < 1:
            raise ValueError("backoff factor must be >= 1")
        if self.jitter not in ("full", "equal", "none"):
            raise ValueError(f"backoff jitter must be full, equal or none, not {self.jitter!r}")

    def raw(self, retries: int) -> float:
        """The un-jittered delay before retry number ``retries + 1``."""
        retries = max(0, int(retries))
        if self.base == 0:
            return 0.0
        # Compare in log space so huge retry counts cannot overflow a float.
        if self.factor > 1 and retries * math.log(self.factor) > math.log(self.cap / self.base
                                                                        if self.cap else 1):
            return self.cap
        return min(self.cap, self.base * self.factor**retries)

    def delay(self, retries: int, rng: random.Random | None = None) -> float:
        """The countdown for the next retry, jittered as configured."""
        raw = self.raw(retries)
        r = rng or random
        if self.jitter == "none":
            return raw
        if self.jitter == "equal":
            return raw / 2 + r.uniform(0, raw / 2)
        return r.uniform(0, raw)

    def bounds(self, retries: int) -> tuple[float, float]:
        """The interval :meth:`delay` draws from (for checks and documentation)."""
        raw = self.raw(retries)
        if self.jitter == "none":
            return raw, raw
        if self.jitter == "equal":
            return raw / 2, raw
        return 0.0, raw

    def with_overrides(self, **overrides: Any) -> Backoff:
        """A copy with ``backoff_base``/``backoff_factor``/... style overrides applied."""
        fields = {k.removeprefix("backoff_"): v for k, v in overrides.items() if v is not None}
        fields = {k: v for k, v in fields.items() if k in {"base", "factor", "cap", "jitter"}}
        return replace(self, **fields) if fields else self


__all__ = ["DEFAULT_BASE", "DEFAULT_CAP", "DEFAULT_FACTOR", "DEFAULT_JITTER", "Backoff", "Jitter"]
