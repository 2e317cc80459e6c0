"""Every ``warden_*`` message header and request attribute, and the helpers that read them.

Warden carries per-delivery facts in the task message itself (custom headers ride along on
``retry()`` and on Warden's own re-publishes), so no Redis round trip is needed on the task's
path to know when a message was sent, how often it was deferred or which DLQ entry it replays.
Nothing else in the package spells a header name; read them through :func:`read` so that a value
is found both where Celery puts custom headers on the request (as attributes) and in
``request.headers``.

=======================  =================================================================
header                   meaning
=======================  =================================================================
``warden_sent``          epoch seconds the publisher sent this delivery (queue wait)
``warden_received``      epoch seconds the worker's main process received it (stamped into
                         the request dict, never published)
``warden_priority``      the user-level priority 0..10 (10 most urgent) on both brokers
``warden_defers``        deliveries of this attempt re-scheduled by a guard (no retry spent)
``warden_rate_slot``     a fleet rate-limit slot reserved for the next delivery
``warden_options``       per-call options of the base task classes (``warden={...}``)
``warden_history``       retry history (one item per retried attempt)
``warden_dlq_entry``     the DLQ entry a requeued task came from
``warden_requeues``      how many times that entry was requeued
=======================  =================================================================

Request attributes (set on ``task.request`` in the pool child, never published):
``warden_deferred`` (a guard re-scheduled this delivery; the reason), ``warden_guarded`` (the
base class already applied idempotency to this delivery).
"""

from __future__ import annotations

from typing import Any

SENT = "warden_sent"
RECEIVED = "warden_received"
PRIORITY = "warden_priority"
DEFERS = "warden_defers"
RATE_SLOT = "warden_rate_slot"
OPTIONS = "warden_options"
HISTORY = "warden_history"
DLQ_ENTRY = "warden_dlq_entry"
REQUEUES = "warden_requeues"

DEFERRED_ATTR = "warden_deferred"
GUARDED_ATTR = "warden_guarded"

#: Prefix of every header Warden owns (carried into a DLQ requeue unless per-delivery).
PREFIX = "warden_"
#: Headers that describe one delivery and are not carried into a DLQ requeue.
PER_DELIVERY = frozenset({SENT, RECEIVED, DEFERS, PRIORITY, DLQ_ENTRY, REQUEUES, "redelivered"})


def read(req: Any, name: str) -> Any:
    """A header's value from a task request (``Context``), a worker request dict or a plain
    headers dict; ``None`` when absent."""
    if isinstance(req, dict):
        value = req.get(name)
        if value is None and isinstance(req.get("headers"), dict):
            value = req["headers"].get(name)
        return value
    value = getattr(req, name, None)
    if value is None:
        headers = getattr(req, "headers", None)
        if headers:
            value = headers.get(name)
    return value


def as_int(value: Any, default: int = 0) -> int:
    """A header value as an int (headers come from the network: anything may be in them)."""
    if value is None:  # the usual case (header absent): no exception raised and caught
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def defers(req: Any) -> int:
    """Deferral count of a delivery, from a task request or a request dict."""
    return max(0, as_int(read(req, DEFERS)))


def options(req: Any) -> dict[str, Any]:
    """Per-call options (``warden={...}``) of a request; ``{}`` when absent or malformed."""
    value = read(req, OPTIONS)
    return value if isinstance(value, dict) else {}


def history(req: Any) -> list[dict[str, Any]]:
    """Retry history carried by a request; ``[]`` when absent or malformed."""
    value = read(req, HISTORY)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def replayable(headers: dict[str, Any] | None) -> dict[str, Any]:
    """Warden's headers worth carrying into a requeue (options, history), without the ones
    that describe a single delivery."""
    return {k: v for k, v in (headers or {}).items()
            if k.startswith(PREFIX) and k not in PER_DELIVERY}


__all__ = ["DEFERRED_ATTR", "DEFERS", "DLQ_ENTRY", "GUARDED_ATTR", "HISTORY", "OPTIONS",
           "PER_DELIVERY", "PREFIX", "PRIORITY", "RATE_SLOT", "RECEIVED", "REQUEUES", "SENT",
           "as_int", "defers", "history", "options", "read", "replayable"]
