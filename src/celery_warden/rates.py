"""Rate syntax shared by the settings (``WARDEN_QUEUE_RATE_LIMITS``) and the fleet rate limits.

Celery's own syntax (``"100/m"``, ``"20/s"``, ``"5/h"``) plus a day unit and a period multiplier
(``"10/5m"``). It lives in the foundation so that settings can validate a value at start-up
without importing the fleet primitives that enforce it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
          "h": 3600.0, "hour": 3600.0, "d": 86400.0, "day": 86400.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+?)s?\s*$")



@dataclass(frozen=True, slots=True)
class Rate:
    """``amount`` starts per ``period`` seconds, evenly spaced."""

    amount: int
    period: float
    text: str

    @property
    def interval(self) -> float:
        return self.period / self.amount

    @property
    def interval_us(self) -> int:
        return max(1, round(self.interval * 1_000_000))


def parse_rate(text: str) -> Rate:
    """``"100/m"``, ``"20/s"``, ``"5/h"``, ``"2/d"``, ``"10/5m"`` (Celery's syntax, plus a
    period multiplier) → :class:`Rate`. Raises ``ValueError`` naming the accepted forms."""
    match = _RATE.match(text.lower()) if isinstance(text, str) else None
    unit = _UNITS.get(match.group(3)) if match else None
    if match is None or unit is None or int(match.group(1)) < 1:
        raise ValueError(f"rate {text!r} is invalid: expected N/s, N/m, N/h or N/d "
                         "(e.g. '100/m', '20/s', '10/5m') with N >= 1")
    multiple = int(match.group(2) or 1)
    if multiple < 1:
        raise ValueError(f"rate {text!r} is invalid: the period multiplier must be >= 1")
    return Rate(int(match.group(1)), unit * multiple, text.strip())


def parse_queue_rates(text: str) -> dict[str, Rate]:
    """``"default=100/m,low_priority=5/s"`` → ``{"default": Rate, ...}``."""
    out: dict[str, Rate] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, rate = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"entry {part.strip()!r} is invalid: expected queue=rate, "
                             "e.g. default=100/m")
        out[name.strip()] = parse_rate(rate)
    return out


__all__ = ["Rate", "parse_queue_rates", "parse_rate"]
