"""One priority scale on both brokers: 0..10, where 10 is the most urgent.

The brokers disagree natively. RabbitMQ (``x-max-priority``) delivers higher numbers first.
Kombu's Redis transport keeps one list per priority step and polls them in ascending order, so
0 is the most urgent, and a message published without a priority lands in the 0 list, ahead of
everything. Warden normalises at publish time (``before_task_publish``):

* the user-level priority (``priority=`` on ``apply_async``, the task's ``priority`` attribute,
  or :data:`DEFAULT_PRIORITY` when none is given) is kept in the ``warden_priority`` header;
* on Redis the message property becomes ``MAX_PRIORITY - priority``; on RabbitMQ it is unchanged.

Kombu's Redis transport has ten lanes (it caps message priority at 9), so on Redis the user
priorities 0 and 1 share the least urgent lane; 2..10 each have their own. RabbitMQ keeps all 11.

Celery's ``retry()`` re-publishes with the *broker* priority it received, but custom headers are
carried along, so the header (not the property) is the source of truth on every publish.
"""

from __future__ import annotations

from typing import Any

MAX_PRIORITY = 10
DEFAULT_PRIORITY = 5
HEADER = "warden_priority"


def clamp(priority: Any) -> int:
    """A user priority as an int in 0..10 (None → the default)."""
    if priority is None:
        return DEFAULT_PRIORITY
    try:
        value = int(priority)
    except (TypeError, ValueError):
        return DEFAULT_PRIORITY
    return max(0, min(MAX_PRIORITY, value))


def to_broker(priority: int, broker_is_redis: bool) -> int:
    """The message property for a user-level priority on this broker."""
    return MAX_PRIORITY - priority if broker_is_redis else priority


def normalise(headers: dict[str, Any], properties: dict[str, Any], broker_is_redis: bool) -> int:
    """Rewrite a message's priority in place; returns the user-level priority."""
    if HEADER in headers:
        user = clamp(headers[HEADER])
    else:
        user = clamp(properties.get("priority"))
        headers[HEADER] = user
    properties["priority"] = to_broker(user, broker_is_redis)
    return user


def redis_lanes(channel: Any, queue: str) -> list[str]:
    """The Redis keys of ``queue``'s priority lanes on kombu's Redis ``channel``, in the order
    kombu polls them, each once (steps capped at 9 share a key), with the channel's
    ``global_keyprefix``. Uses kombu's private ``_q_for_pri``: the one place that names a lane."""
    prefix = getattr(channel, "global_keyprefix", "") or ""
    return list(dict.fromkeys(prefix + channel._q_for_pri(queue, p)
                              for p in channel.priority_steps))


__all__ = ["DEFAULT_PRIORITY", "HEADER", "MAX_PRIORITY", "clamp", "normalise", "redis_lanes",
           "to_broker"]
