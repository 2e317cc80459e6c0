"""Plumbing shared by the fleet primitives: settings, Redis clients, Lua scripts, outages.

Circuit breakers, idempotency keys and fleet rate limits keep their state in Redis and change
it only inside Lua scripts, so every check is one round trip and no two processes ever
interleave a read and a write. This module gives them:

* :func:`settings_for` — the settings of the ``Warden`` installed on an app (the worker's), or
  settings loaded once from the environment for code that never installed one;
* :func:`client` — one Redis client per URL *per process* (a pool child never reuses the
  parent's sockets after fork, and gets a fresh lock: another thread of the parent may have
  held it at the moment of fork);
* :class:`Outage` — a per-process memory of "Redis just failed": for ``OUTAGE_BACKOFF``
  seconds after a connection error or a refusal the primitives answer with their documented
  fail-open or fail-closed behaviour at once instead of paying a round trip (or a socket
  timeout) per task.

Every Redis error of a check is caught (``REDIS_ERRORS``), not only connection errors: a store
that answers ``READONLY`` (a replica after a failover) or ``OOM`` (``maxmemory`` reached under
``noeviction``) must not fail the task, nor bypass idempotency's fail-closed answer. Three kinds,
told apart by :meth:`Outage.failed`:

* unreachable (connection refused, timeout, reset) and refused (``READONLY``, ``OOM``, ...;
  :func:`~celery_warden.services.refusal`): an outage — back off, a warning every 30 s;
* anything else (a Lua error from a bug in a script, a key of the wrong type under our
  prefix): not an outage and not to be hidden — an ERROR with the traceback every 30 s, no
  back-off (other keys still work). The primitive answers the same way in all three cases.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import redis
from celery import current_app

from celery_warden.services import redis_client, refusal, services_for
from celery_warden.settings import WardenSettings, load_settings

logger = logging.getLogger("celery_warden.fleet")

#: What counts as "the store is unreachable" (connection refused, timeout, reset, ...).
STORE_ERRORS: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError,
                                                 OSError)
#: Every error a check can raise; each primitive answers it open or closed (see above).
REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
#: Seconds a process skips Redis after a connection error or a refusal (answers at once).
OUTAGE_BACKOFF = 2.0
#: Seconds between repeated "store unreachable" warnings from one process and primitive.
WARN_EVERY = 30.0

_lock = threading.Lock()
_clients: dict[tuple[int, str], redis.Redis] = {}
_default_settings: WardenSettings | None = None


def _after_fork_in_child() -> None:
    """A lock the parent's other threads may have held at fork is never released in the
    child: replace it (the parent's clients stay keyed by the parent's pid, unused here)."""
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def settings_for(app: Any = None) -> WardenSettings:
    """Settings of the Warden installed on ``app`` (or the current app), else from the env."""
    global _default_settings
    if app is None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
    services = services_for(app)
    if services is not None:
        return services.settings
    if _default_settings is None:
        _default_settings = load_settings()
    return _default_settings


def client(settings: WardenSettings) -> redis.Redis:
    """This process's Redis client for the store (short timeouts, decoded strings)."""
    key = (os.getpid(), settings.redis_url)
    found = _clients.get(key)
    if found is None:
        with _lock:
            found = _clients.get(key)
            if found is None:
                # A check is on the task's path: a hard deadline, no retries (a failed
                # check answers open or closed at once, see Outage).
                found = _clients[key] = redis_client(
                    settings.redis_url, timeout=settings.store_deadline, retries=0)
    return found


def observe(task: Any, outcome: str, static: dict[str, str] | None = None) -> None:
    """Count ``outcome`` for the task's name in its minute bucket (buffered, no I/O) and
    optionally add static fields to the task's record. Never raises into the task."""
    try:
        services = services_for(task.app)
        if services is None:
            return
        services.recorder.observe(task.name, time.time(), outcome)
        if static and task.request.id:
            services.recorder.task(task.request.id, static=static)
    except Exception:  # monitoring never breaks the work it watches
        logger.debug("warden: could not record %s", outcome, exc_info=True)


class Outage:
    """Remembers, per process, that the store failed recently; logs at most every 30 s."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.failures = 0
        self._until = 0.0
        self._last_warning = self._last_error = -WARN_EVERY

    @property
    def active(self) -> bool:
        return time.monotonic() < self._until

    def failed(self, exc: BaseException, consequence: str) -> None:
        """A check failed with ``exc``; the primitive answers with ``consequence``."""
        now = time.monotonic()
        self.failures += 1
        code = refusal(exc)
        if code is None and not isinstance(exc, STORE_ERRORS):
            if now - self._last_error >= WARN_EVERY:
                self._last_error = now
                logger.error("warden: %s: unexpected Redis error (%s: %s); %s", self.what,
                             type(exc).__name__, exc, consequence, exc_info=exc)
            return
        self._until = now + OUTAGE_BACKOFF
        if now - self._last_warning >= WARN_EVERY:
            self._last_warning = now
            if code is not None:
                logger.warning("warden: %s: Redis refused the command (%s: %s); %s",
                               self.what, code, exc, consequence)
            else:
                logger.warning("warden: %s: Redis unreachable (%s: %s); %s", self.what,
                               type(exc).__name__, exc, consequence)

    def reset(self) -> None:
        """Forget the outage (and when it was last logged)."""
        self._until = 0.0
        self._last_warning = -WARN_EVERY
        self._last_error = -WARN_EVERY


__all__ = ["OUTAGE_BACKOFF", "REDIS_ERRORS", "STORE_ERRORS", "Outage", "client", "observe",
           "settings_for"]
