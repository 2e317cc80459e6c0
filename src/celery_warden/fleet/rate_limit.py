"""Fleet-wide rate limits per task name and per queue, enforced through Redis.

Celery's ``rate_limit="100/m"`` is a token bucket of size 1 *inside each worker process*:
with 20 processes the fleet runs 20 x 100/m. ``fleet_rate_limit="100/m"`` (a task option) and
``WARDEN_QUEUE_RATE_LIMITS="default=100/m"`` hold across every worker and machine, with the same
shape as Celery's (evenly spaced starts, no burst), because one Lua script
(``lua/rate_limit.lua``) keeps each limit's GCRA state — the time the next call may start — and
moves it atomically.

A throttled task is not dropped, not failed and not retried: the check *reserves* the next free
slot and the task is deferred (re-published with the same id, args and retry count) with a
countdown that ends at that slot; when it comes back it starts without asking again. Every task
is therefore deferred at most once per ``WARDEN_MAX_DEFER`` instead of polling, and the starts
are spread evenly instead of a herd of waiters racing for each freed slot. Guarantee: by any
time ``t``, at most ``1 + (t - t0) / interval`` reserved starts were due since ``t0``; a task
whose worker is busy when its slot comes starts a little late, never early.

Redis unreachable or refusing writes (``READONLY``, ``OOM``), or any other Redis error:
**fail open** (the task runs unthrottled; Celery's per-worker ``rate_limit``, if set, still
applies as a local backstop). A rate limit protects a dependency's
quota; stopping all work because the *store* is down would be the larger failure.

``limits`` (the library) was measured and not used for enforcement: see ``docs/resilience.md``
and ``bench/fleet_primitives.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from celery_warden import scripts
from celery_warden.errors import RateLimited
from celery_warden.fleet import context as _fleet
from celery_warden.keys import Keys
from celery_warden.rates import Rate, parse_queue_rates, parse_rate
from celery_warden.settings import WardenSettings

#: Early arrival of a reserved delivery that still counts as "at its slot" (timer jitter).
SLOT_TOLERANCE = 0.02

_outage = _fleet.Outage("fleet rate limit")

@dataclass(frozen=True, slots=True)
class Limit:
    """One rate limit that applies to a call: its Redis key and rate."""

    key: str
    rate: Rate
    label: str


@dataclass(frozen=True, slots=True)
class Reservation:
    """Result of a check: start now (``wait == 0``), or at a reserved slot ``wait`` s from now,
    or (``reserved`` False) ask again after ``wait`` s because no slot was free soon enough."""

    wait: float
    reserved: bool
    labels: tuple[str, ...]

    @property
    def now(self) -> bool:
        return self.reserved and self.wait <= 0.0


class FleetRateLimiter:
    """Checks and reserves fleet-wide rate-limit slots for one store."""

    def __init__(self, settings: WardenSettings) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self._queues = parse_queue_rates(settings.queue_rate_limits)

    def limits_for(self, task_name: str, queue: str | None,
                   task_rate: str | None) -> list[Limit]:
        """The limits a delivery of ``task_name`` from ``queue`` is subject to."""
        limits = []
        if task_rate:
            rate = parse_rate(task_rate)
            limits.append(Limit(self.keys.ratelimit("task", task_name), rate,
                                f"task {task_name} {rate.text}"))
        if queue and self._queues:
            rate_q = self._queues.get(queue)
            prefix = self.settings.queue_prefix
            if rate_q is None and prefix and queue.startswith(prefix):
                rate_q = self._queues.get(queue[len(prefix):])
            if rate_q is not None:
                limits.append(Limit(self.keys.ratelimit("queue", queue), rate_q,
                                    f"queue {queue} {rate_q.text}"))
        return limits

    def reserve(self, limits: list[Limit], max_wait: float) -> Reservation:
        """Take the earliest slot every limit allows if it is within ``max_wait`` seconds
        (one round trip). Fails open: a store that fails answers "start now"."""
        labels = tuple(limit.label for limit in limits)
        if not limits or _outage.active:
            return Reservation(0.0, True, labels)
        conn = _fleet.client(self.settings)
        try:
            reserved, wait_us = cast(list[int], scripts.script(conn, "rate_limit")(
                keys=[limit.key for limit in limits],
                args=[max(0, int(max_wait * 1_000_000)),
                      *[limit.rate.interval_us for limit in limits]],
            ))
        except _fleet.REDIS_ERRORS as exc:
            _outage.failed(exc, "fleet rate limits fail open (tasks run unthrottled)")
            return Reservation(0.0, True, labels)
        return Reservation(max(0.0, int(wait_us) / 1_000_000), bool(int(reserved)), labels)

    def hit(self, name: str, rate: str) -> None:
        """For callers outside tasks: start now or raise :class:`RateLimited` (nothing is
        reserved when refused)."""
        limit = Limit(self.keys.ratelimit("task", name), parse_rate(rate), f"{name} {rate}")
        result = self.reserve([limit], 0.0)
        if not result.reserved:
            raise RateLimited(limit.label, result.wait)


__all__ = ["SLOT_TOLERANCE", "FleetRateLimiter", "Limit", "Rate", "Reservation",
           "parse_queue_rates", "parse_rate"]
