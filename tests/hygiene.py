"""Every Redis client and Celery app a test creates is closed when the test ends (and Celery's
process-wide "inside a worker" flag is reset).

Tests build monitors, DLQ handles and client apps freely; each holds sockets (Redis, the
broker). Left to the garbage collector they end as ``ResourceWarning: unclosed socket`` — which
the suite turns into errors, as it does every warning. Rather than a ``close()`` in every test,
the clients and apps created during a test are tracked (a weak set: tracking keeps nothing
alive) and their connection pools closed after it. A pool closed under an object that is used
again later simply reconnects, so a module-level app that a test imported stays usable.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import Any

import redis
from celery import Celery
from celery._state import _set_task_join_will_block

_clients: weakref.WeakSet[redis.Redis] = weakref.WeakSet()
_apps: weakref.WeakSet[Celery] = weakref.WeakSet()


def _track(cls: type, registry: weakref.WeakSet[Any]) -> None:
    original = cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        registry.add(self)

    cls.__init__ = __init__  # type: ignore[method-assign]


def install() -> None:
    """Start tracking (once, from conftest, before any test module imports an app)."""
    if not getattr(redis.Redis, "_warden_tracked", False):
        _track(redis.Redis, _clients)
        _track(Celery, _apps)
        redis.Redis._warden_tracked = True  # type: ignore[attr-defined]


@contextlib.contextmanager
def closing_what_is_created() -> Iterator[None]:
    """Close the pools of the Redis clients and Celery apps created inside the block."""
    clients_before = {id(c) for c in _clients}
    apps_before = {id(a) for a in _apps}
    try:
        yield
    finally:
        # A worker built in the test's own process (WorkController, a pool initializer) marks
        # the process as "inside a worker", after which every result.get() raises: reset it.
        _set_task_join_will_block(False)
        for app in list(_apps):
            if id(app) not in apps_before:
                with contextlib.suppress(Exception):
                    app.close()
        for client in list(_clients):
            if id(client) not in clients_before:
                with contextlib.suppress(Exception):
                    client.connection_pool.disconnect()
