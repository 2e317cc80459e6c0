"""Queue depth on either broker, through kombu's passive ``queue_declare``.

Why passive declare instead of broker-specific calls: kombu's Redis transport answers it with the
sum over every priority sub-list (``queue``, ``queue\\x06\\x161`` ...), and RabbitMQ answers it
with the ready-message count, so one code path serves both. Differences callers should know:

* RabbitMQ counts only *ready* messages; messages prefetched by workers (unacknowledged) are
  not in the depth. Redis counts what is in the lists; prefetched messages sit in kombu's
  ``unacked`` hash and are not counted either.
* A queue RabbitMQ does not know is reported as ``None`` (not declared); on Redis an empty queue
  has no key at all, so it reads as 0.
* On Redis the declare is *not* passive: kombu's passive check uses ``EXISTS``, which its
  ``global_keyprefix`` support does not prefix, so with ``WARDEN_BROKER_KEY_PREFIX`` every queue
  looked absent (depth 0). A virtual-transport declare writes nothing to Redis and its count
  (``LLEN`` per priority list) is prefixed correctly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import redis
from kombu.exceptions import ChannelError as KombuChannelError

from celery_warden.keys import Keys
from celery_warden.read.broker_pool import is_redis, using
from celery_warden.read.latency import oldest_ages


def _is_not_found(exc: BaseException) -> bool:
    code = getattr(exc, "code", None) or getattr(exc, "reply_code", None)
    return code == 404 or "NOT_FOUND" in str(exc) or "no queue" in str(exc).lower()


def queue_depths(app: Any, names: Iterable[str]) -> dict[str, int | None]:
    """Messages waiting per queue; ``None`` for a queue the broker does not have."""
    names = list(dict.fromkeys(names))
    if not names:
        return {}
    return using(app, lambda conn: _depths(conn, names))  # a pooled connection (broker_pool)


def _depths(conn: Any, names: list[str]) -> dict[str, int | None]:
    depths: dict[str, int | None] = {}
    conn.ensure_connection(max_retries=1)
    passive = not is_redis(conn)
    channel = conn.channel()
    try:
        for name in names:
            try:
                ok = channel.queue_declare(queue=name, passive=passive)
                depths[name] = int(ok.message_count)
            except KombuChannelError as exc:
                if not _is_not_found(exc):
                    raise
                depths[name] = 0 if is_redis(conn) else None
            except Exception as exc:
                if not _is_not_found(exc):
                    raise
                depths[name] = None
                # AMQP closes the channel on a 404: open a fresh one for the next queue.
                with contextlib.suppress(Exception):
                    channel.close()
                channel = conn.channel()
    finally:
        with contextlib.suppress(Exception):
            channel.close()
    return depths


class QueueReader:
    """Queue names (configured, then seen by the recorder) and their depths in the broker."""

    #: Queue names read from the store's index (most recently seen first).
    MAX_SEEN = 100

    def __init__(self, app: Any, keys: Keys, client: redis.Redis) -> None:
        self.app = app
        self.keys = keys
        self.redis = client

    def names(self) -> list[str]:
        configured = [q.name for q in (self.app.conf.task_queues or [])]
        seen = self.redis.zrevrange(self.keys.queues, 0, self.MAX_SEEN - 1)
        return list(dict.fromkeys([*configured, *(str(s) for s in seen)]))

    def depths(self, names: list[str] | None = None) -> dict[str, int | None]:
        """Messages waiting per queue (Redis priority sub-queues summed; RabbitMQ ready)."""
        return queue_depths(self.app, names or self.names())

    def oldest(self, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """Age of the oldest waiting message per queue (see :mod:`celery_warden.read.latency`)."""
        return oldest_ages(self.app, names or self.names())


__all__ = ["QueueReader", "queue_depths"]
