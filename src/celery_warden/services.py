"""The services ``Warden(app)`` builds once and hands down: settings, keys, the store client, the
redactor and the recorder.

Why one object, at the bottom: the signal handlers, the base task classes, the fleet primitives,
the heartbeat and the DLQ capture all need the same settings, the same per-process Redis client
and the same recorder. Looking them up through ``Warden.installed_on(app)`` made every lower
module import the top one. Now ``Warden`` builds a :class:`Services`, passes it to what it
creates, and attaches it to the app; code that only has a task or an app in hand (a base task
class, a guard) reaches it through :func:`services_for` — the one documented accessor.

The recorder lives in a higher layer (``record/``), so this module names only what lower
layers may ask of it (:class:`RecordSink`).
"""

from __future__ import annotations

# The first connection of a process looks its host up through the "idna" codec, which imports
# encodings.idna. Imported here, by the thread importing Warden, rather than on the flusher
# thread's first flush: a child forked while another thread is importing a module inherits
# that module's import lock held and hangs when it imports it too (see scripts.py).
import encodings.idna  # noqa: F401
import os
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from celery_warden.keys import Keys
from celery_warden.redaction import Redactor
from celery_warden.settings import WardenSettings

#: Socket timeouts of Warden's own Redis connections: short, so a dead Redis costs a background
#: thread (never a task) at most this long per attempt.
SOCKET_TIMEOUT = 2.0
#: Attribute of a Celery app that holds its Warden's services.
ATTR = "_celery_warden_services"


def redis_client(url: str, *, decode: bool = True, timeout: float = SOCKET_TIMEOUT,
                 retries: int | None = None) -> redis.Redis:
    """A Redis client with the short timeouts Warden uses everywhere. ``retries=0`` for a
    call on a task's path with a hard deadline: redis-py otherwise retries a timed-out
    command 3 times (with back-off), which multiplies the deadline."""
    extra: dict[str, Any] = {}
    if retries is not None:
        extra["retry"] = Retry(NoBackoff(), retries)
    return redis.Redis.from_url(
        url,
        decode_responses=decode,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        **extra,
    )


#: Error codes of a Redis that answers but refuses the command for now: a replica after a
#: failover (``READONLY``), memory full under ``noeviction`` (``OOM``), a failed disk save
#: (``MISCONF``), a long script (``BUSY``), a data set still loading, ... Server states that
#: pass, not bugs: callers treat them like an unreachable store.
REFUSALS = ("READONLY", "OOM", "MISCONF", "BUSY", "LOADING", "MASTERDOWN", "NOREPLICAS",
            "TRYAGAIN", "CLUSTERDOWN")
_REFUSAL_CODE = re.compile(r"(?:^|\s-)(" + "|".join(REFUSALS) + r")\b")
_REFUSAL_TYPES: tuple[tuple[type[redis.RedisError], str], ...] = (
    (redis.ReadOnlyError, "READONLY"), (redis.OutOfMemoryError, "OOM"),
    (redis.BusyLoadingError, "LOADING"),
)


def refusal(exc: BaseException) -> str | None:
    """The code (``READONLY``, ``OOM``, ...) when Redis answered but refused the command for
    now, else None (unreachable, or an error that will not pass: a script bug, a wrong type).

    redis-py raises its own classes for some codes and strips the code from their message;
    from inside a Lua script, Redis 6 reports the code only in the message
    (``Error running script ...: -OOM command not allowed ...``)."""
    for cls, code in _REFUSAL_TYPES:
        if isinstance(exc, cls):
            return code
    if isinstance(exc, redis.ResponseError):
        found = _REFUSAL_CODE.search(str(exc))
        return found.group(1) if found else None
    return None


class RecordSink(Protocol):
    """What lower layers may hand to the recorder: buffered, never I/O on the caller's path."""

    def task(self, task_id: str, *, static: dict[str, Any] | None = None,
             attempt: dict[str, Any] | None = None, retries: int = 0, rank: int = 0,
             defers: int = 0, total: tuple[str, str, str, str, str] | None = None) -> None: ...

    def sent(self, entry: tuple[Any, ...]) -> None:
        """A task was published (a raw tuple; see ``RecordBuffer.sent``)."""
        ...

    def observe(self, name: str, ts: float, outcome: str, duration: float | None = None,
                wait: float | None = None, queue: str | None = None,
                retried: bool = False) -> None: ...

    def error(self, info: dict[str, str], task_name: str, task_id: str, ts: float) -> None: ...

    def stat(self, name: str, amount: int = 1) -> None: ...

    def heartbeat(self, hostname: str, fields: dict[str, str]) -> None: ...

    def flush(self) -> bool: ...

    def flush_within(self, seconds: float) -> bool:
        """Flush, waiting at most ``seconds`` for it."""
        ...

    def begin_exit(self) -> None:
        """The process is stopping: flush now in the background; with a spool, the exit's
        flushes share one deadline from here on."""
        ...

    def spool_dlq(self, fields: dict[str, str]) -> bool:
        """Keep a DLQ entry that could not be written (False: this process has no spool)."""
        ...

    def holds(self, task_id: str) -> bool:
        """Whether a change to this task's record is buffered here, not yet written."""
        ...


class Beater(Protocol):
    """The worker's heartbeat, as the lifecycle signal handlers see it."""

    def beat(self, state: str) -> None: ...


@dataclass(eq=False)
class Services:
    """Everything one Warden shares with the parts it wires in (one per app, per process)."""

    settings: WardenSettings
    app: Any
    recorder: RecordSink
    redactor: Redactor = field(init=False)
    keys: Keys = field(init=False)
    #: Set by the heartbeat bootstep in a worker's main process.
    heartbeat: Beater | None = None
    _client: redis.Redis | None = field(default=None, init=False, repr=False)
    _client_pid: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        self.redactor = Redactor(self.settings.redact_keys)
        self.keys = Keys(self.settings.key_prefix)

    @property
    def client(self) -> redis.Redis:
        """This process's Redis client for the store (a forked child makes its own, so no two
        processes ever share a socket). No lock, so nothing can be inherited locked across a
        fork: two threads racing here each build a client and one is dropped, harmlessly."""
        pid = os.getpid()
        found = self._client
        if found is None or self._client_pid != pid:
            found = redis_client(self.settings.redis_url)
            self._client, self._client_pid = found, pid
        return found


def attach(app: Any, services: Services) -> None:
    setattr(app, ATTR, services)


def detach(app: Any, services: Services) -> None:
    if getattr(app, ATTR, None) is services:
        delattr(app, ATTR)


def services_for(app: Any) -> Services | None:
    """The services of the Warden installed on ``app`` (``None`` without one)."""
    found = getattr(app, ATTR, None) if app is not None else None
    return found if isinstance(found, Services) else None


__all__ = ["REFUSALS", "SOCKET_TIMEOUT", "Beater", "RecordSink", "Services", "attach", "detach",
           "redis_client", "refusal", "services_for"]
