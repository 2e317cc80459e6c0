"""Deferral: run this delivery later without spending a retry.

A guard (circuit open, fleet rate limit, a duplicate still running, the idempotency store
unreachable) calls :func:`defer`. It re-publishes the *same* task — same id, args, kwargs,
``retries``, routing, time limits, callbacks and custom headers (``warden_priority``,
``warden_options``, ``warden_history``) — with a countdown, adds one to the ``warden_defers``
header, marks the request (``warden_deferred = reason``) and raises Celery's ``Ignore``, which
acknowledges the current message without storing a result. The signal handlers turn that
IGNORED outcome into state ``DEFERRED`` (below every final state, so the next delivery's
STARTED/SUCCESS replaces it) and count the outcome ``deferred``.

Why not ``self.retry()``: a retry consumes ``max_retries``, lands in the retry metrics and the
retry history, and after the last one the task goes to the DLQ — while a deferred task has done
nothing wrong. Why not sleep in the worker: a pool process would be blocked for the whole wait.
"""

from __future__ import annotations

from typing import Any, NoReturn

from celery.exceptions import Ignore

from celery_warden import headers as h

#: Header carrying a rate-limit slot reserved for the re-published delivery.
SLOT_HEADER = h.RATE_SLOT
#: Shortest countdown of a deferral (a zero countdown would spin on the broker).
MIN_COUNTDOWN = 0.01


def defer(task: Any, countdown: float, reason: str, *, max_defer: float,
          headers: dict[str, Any] | None = None) -> NoReturn:
    """Re-publish the current delivery ``countdown`` seconds from now and end this one."""
    req = task.request
    merged = dict(req.headers or {})
    merged.pop(SLOT_HEADER, None)  # a slot belongs to one delivery only
    merged.update(headers or {})
    merged[h.DEFERS] = h.defers(req) + 1
    countdown = min(max(float(countdown), MIN_COUNTDOWN), max_defer)
    sig = task.signature_from_request(
        req, countdown=countdown, retries=int(req.retries or 0), headers=merged,
    )
    sig.apply_async()
    # Marked twice: the request for ``task_postrun`` (its context is still pushed then), the
    # Ignore for the pool child's tracer hook (which sees what the tracer returns).
    setattr(req, h.DEFERRED_ATTR, reason)
    ignore = Ignore(f"deferred {countdown:.3f}s: {reason}")
    setattr(ignore, h.DEFERRED_ATTR, reason)
    raise ignore


def slot_header(task: Any, at: float) -> dict[str, Any]:
    """The header that lets the next delivery start at ``at`` (epoch) without a new check."""
    req = task.request
    return {SLOT_HEADER: {"at": round(at, 6), "retries": int(req.retries or 0),
                          "defers": h.defers(req) + 1}}


def held_slot(task: Any) -> float | None:
    """The slot time this delivery reserved earlier, if the header belongs to it."""
    req = task.request
    value = h.read(req, SLOT_HEADER)
    if not isinstance(value, dict):
        return None
    try:
        if (int(value["retries"]) != int(req.retries or 0)
                or int(value["defers"]) != h.defers(req)):
            return None  # carried along by a retry or another deferral: not ours
        return float(value["at"])
    except (KeyError, TypeError, ValueError):
        return None


__all__ = ["MIN_COUNTDOWN", "SLOT_HEADER", "defer", "held_slot", "slot_header"]
