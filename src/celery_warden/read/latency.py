"""Queue latency: how long the oldest message still waiting in each queue has been waiting.

Depth says how much work waits; latency says how late it already is — the number a queue-latency
alert and the autoscaler's target compare with.

**Redis broker.** kombu pushes with ``LPUSH`` and pops with ``RPOP``/``BRPOP``, one list per
priority step (``queue``, ``queue\\x06\\x161``, ...), so the oldest message of a list is its
tail (``LINDEX key -1``): one read per priority list, nothing moved or consumed. Its age is now
minus the later of the ``warden_sent`` header (stamped by the publisher's ``Warden``) and its
ETA. A message published without Warden carries no send time and is reported as unknown.

**RabbitMQ: not measured** (``None`` with the reason). AMQP can only look at a message by taking
it (``basic.get``) and putting it back (``basic.reject`` with requeue), which sets its
``redelivered`` flag: Warden's poison-pill detection counts that as a delivery, so peeking would
push innocent messages towards the DLQ, and every peek costs a round trip per queue on the
broker's hot path. The management plugin's ``head_message_timestamp`` needs an AMQP
``timestamp`` property Celery does not set. Operators on RabbitMQ watch depth and the
autoscaler's expected wait (backlog / drain rate) instead; see ``docs/alerts.md``.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from celery_warden import headers as h
from celery_warden.priority import redis_lanes
from celery_warden.read.broker_pool import is_redis, using

#: Why RabbitMQ queues have no oldest-message age (shown with the ``None``).
RABBITMQ_REASON = ("not measured on RabbitMQ: peeking marks a message redelivered "
                   "(see docs/alerts.md)")


def _epoch(value: Any) -> float | None:
    if value in (None, ""):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def waiting_since(raw: bytes | str | None) -> float | None:
    """When a raw kombu Redis message started waiting: the later of its send time and its
    ETA; ``None`` when it carries no send time or cannot be read."""
    if raw is None:
        return None
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    headers = message.get("headers") if isinstance(message, dict) else None
    if not isinstance(headers, dict):
        return None
    sent = _epoch(headers.get(h.SENT))
    if sent is None:
        return None
    eta = _epoch(headers.get("eta"))
    return max(sent, eta) if eta is not None else sent


def oldest_ages(app: Any, names: Iterable[str],
                now: float | None = None) -> dict[str, dict[str, Any]]:
    """Per queue: ``{"age": seconds or None, "reason": why unknown or None}``."""
    names = list(dict.fromkeys(names))
    if not names:
        return {}
    return using(app, lambda conn: _ages(conn, names, now))  # pooled (read/broker_pool.py)


def _ages(conn: Any, names: list[str], now: float | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    conn.ensure_connection(max_retries=1)
    if not is_redis(conn):
        return {n: {"age": None, "reason": RABBITMQ_REASON} for n in names}
    channel = conn.channel()
    try:
        lists = {n: redis_lanes(channel, n) for n in names}
        pipe = channel.client.pipeline(transaction=False)
        for keys in lists.values():
            for key in keys:
                pipe.lindex(key, -1)
        replies = iter(pipe.execute())
        now = time.time() if now is None else now
        for name, keys in lists.items():
            tails = [next(replies) for _ in keys]
            out[name] = _age_of(tails, now)
    finally:
        with contextlib.suppress(Exception):
            channel.close()
    return out


def _age_of(tails: list[Any], now: float) -> dict[str, Any]:
    present = [t for t in tails if t is not None]
    if not present:
        return {"age": 0.0, "reason": None}
    since = [s for s in (waiting_since(t) for t in present) if s is not None]
    if not since:
        return {"age": None, "reason": "messages carry no warden_sent header (published "
                                       "without Warden)"}
    return {"age": round(max(0.0, now - min(since)), 3), "reason": None}


__all__ = ["RABBITMQ_REASON", "oldest_ages", "waiting_since"]
