"""Named circuit breakers whose state is shared by every process of the fleet.

A breaker guards one dependency (``"payments-api"``). Its state lives in Redis and changes only
inside ``lua/breaker.lua``, so 20 workers on 5 machines see one breaker, not 100 (pybreaker's
Redis storage keeps counters there but decides in each process; see ``docs/resilience.md``).
Semantics follow resilience4j:

* **closed**: calls run; each outcome enters a count-based sliding window of the last
  ``window_size`` calls. The breaker opens when at least ``minimum_calls`` are in the window and
  the failure rate (or the slow-call rate) reaches its threshold, or after
  ``consecutive_failures`` failures in a row (0 = off).
* **open**: calls are refused (:class:`~celery_warden.errors.CircuitOpenError`, or a deferred
  task) for ``recovery_timeout`` seconds.
* **half-open**: exactly ``half_open_calls`` trial calls are let through, fleet-wide. All of them
  succeeding closes the breaker; any failing (or slow) reopens it. If no trial reports back
  within ``max_half_open`` seconds (its worker died), the breaker reopens, so a lost trial never
  wedges it.
* An outcome reported for a permit issued in an earlier state (a call that started while
  closed and ends after the trip) is ignored: every transition bumps a generation number.

Which exceptions are failures: ``record_exceptions`` (default every ``Exception``) minus
``ignore_exceptions``; anything else counts as a success, an ignored one as no call at all.
Calls slower than ``slow_call_duration`` count as slow (and as failed trials in half-open).

Use it as a context manager or decorator (inside a task or anywhere), or as a task option::

    payments = CircuitBreaker("payments-api", failure_rate_threshold=50, recovery_timeout=30)

    with payments:
        charge(card)

    @app.task(base=RetryableTask, circuit_breaker="payments-api")
    def charge_order(order_id): ...

Redis unreachable or refusing writes (``READONLY`` after a failover, ``OOM``), or any other
Redis error: **fail open** (calls run unguarded, outcomes are not recorded, a warning — an error
with the traceback for an unexpected one — is logged): the breaker protects the dependency, and
turning a store outage into an outage of every dependency would be worse than losing
protection for the length of the outage. Operator calls (``force_*``, ``reset``, ``status``)
raise instead: an operator must see that nothing happened.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

from celery.exceptions import Ignore, Reject, Retry

from celery_warden import scripts
from celery_warden.errors import CircuitOpenError
from celery_warden.fleet import context as _fleet
from celery_warden.fleet.breaker_state import read_breakers
from celery_warden.keys import Keys
from celery_warden.settings import WardenSettings

#: Defaults (resilience4j's names; smaller numbers than its defaults suit task fleets).
DEFAULT_FAILURE_RATE = 50.0
DEFAULT_SLOW_CALL_RATE = 100.0
DEFAULT_MINIMUM_CALLS = 10
DEFAULT_WINDOW_SIZE = 20
DEFAULT_CONSECUTIVE_FAILURES = 0
DEFAULT_RECOVERY_TIMEOUT = 30.0
DEFAULT_HALF_OPEN_CALLS = 3
DEFAULT_MAX_HALF_OPEN = 120.0
#: Seconds a deferred task waits when the breaker is half-open and every trial permit is taken.
DEFAULT_HALF_OPEN_RETRY = 2.0
#: State transitions kept per breaker (``breaker_state`` shows the newest ones).
LOG_SIZE = 50

Outcome = Literal["s", "f", "i"]
Action = Literal["open", "closed", "reset"]
F = TypeVar("F", bound=Callable[..., Any])

_registry: dict[str, CircuitBreaker] = {}
_outage = _fleet.Outage("circuit breaker")


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """The tunables of one breaker (all processes should declare the same)."""

    failure_rate_threshold: float = DEFAULT_FAILURE_RATE
    minimum_calls: int = DEFAULT_MINIMUM_CALLS
    window_size: int = DEFAULT_WINDOW_SIZE
    consecutive_failures: int = DEFAULT_CONSECUTIVE_FAILURES
    recovery_timeout: float = DEFAULT_RECOVERY_TIMEOUT
    half_open_calls: int = DEFAULT_HALF_OPEN_CALLS
    max_half_open: float = DEFAULT_MAX_HALF_OPEN
    slow_call_duration: float | None = None
    slow_call_rate_threshold: float = DEFAULT_SLOW_CALL_RATE
    half_open_retry: float = DEFAULT_HALF_OPEN_RETRY
    record_exceptions: tuple[type[BaseException], ...] = field(default=(Exception,))
    ignore_exceptions: tuple[type[BaseException], ...] = field(default=())

    def __post_init__(self) -> None:
        if not 0 < self.failure_rate_threshold <= 100:
            raise ValueError("failure_rate_threshold must be in (0, 100]")
        if not 0 < self.slow_call_rate_threshold <= 100:
            raise ValueError("slow_call_rate_threshold must be in (0, 100]")
        if self.window_size < 1 or self.minimum_calls < 1:
            raise ValueError("window_size and minimum_calls must be >= 1")
        if self.minimum_calls > self.window_size:
            raise ValueError("minimum_calls cannot exceed window_size (the breaker never trips)")
        if self.half_open_calls < 1 or self.consecutive_failures < 0:
            raise ValueError("half_open_calls must be >= 1 and consecutive_failures >= 0")
        if self.recovery_timeout <= 0 or self.max_half_open <= 0 or self.half_open_retry <= 0:
            raise ValueError("recovery_timeout, max_half_open, half_open_retry must be > 0")

    def script_json(self, trip_retention: int) -> str:
        """The compact form ``breaker.lua`` reads (and stores for display)."""
        return json.dumps({
            "w": self.window_size, "m": self.minimum_calls,
            "fr": self.failure_rate_threshold, "sr": self.slow_call_rate_threshold,
            "cf": self.consecutive_failures, "k": self.half_open_calls,
            "rt": self.recovery_timeout, "mh": self.max_half_open, "hc": LOG_SIZE,
            "tr": trip_retention, "slow": self.slow_call_duration,
        }, separators=(",", ":"), sort_keys=True)


@dataclass(slots=True)
class Permit:
    """Permission for one call; ``generation`` None means "unguarded" (store unreachable)."""

    breaker: CircuitBreaker
    generation: int | None
    state: str
    started: float


class CircuitBreaker:
    """One named breaker. Constructing it registers the name for ``circuit_breaker="name"``."""

    def __init__(self, name: str, *, settings: WardenSettings | None = None,
                 record_exceptions: tuple[type[BaseException], ...] = (Exception,),
                 ignore_exceptions: tuple[type[BaseException], ...] = (),
                 **config: Any) -> None:
        if not name or any(c.isspace() for c in name):
            raise ValueError("a breaker name must be non-empty and without whitespace")
        self.name = name
        self.config = BreakerConfig(record_exceptions=tuple(record_exceptions),
                                    ignore_exceptions=tuple(ignore_exceptions), **config)
        self._settings = settings
        self._local = threading.local()
        _registry[name] = self

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r})"

    # -- the store -------------------------------------------------------------------------
    def _run(self, settings: WardenSettings | None, op: str, *args: Any) -> list[Any]:
        s = settings or self._settings or _fleet.settings_for()
        keys = Keys(s.key_prefix)
        conn = _fleet.client(s)
        result = scripts.script(conn, "breaker")(
            keys=[keys.breaker(self.name), keys.breaker_window(self.name),
                  keys.breaker_log(self.name), keys.breakers, keys.breaker_trips],
            args=[op, self.name, self.config.script_json(s.metrics_retention), *args],
        )
        return cast(list[Any], result)

    # -- permits ---------------------------------------------------------------------------
    def acquire(self, settings: WardenSettings | None = None) -> Permit:
        """Ask for permission to call (one round trip); raises :class:`CircuitOpenError`."""
        started = time.monotonic()
        if _outage.active:
            return Permit(self, None, "unknown", started)
        try:
            allowed, gen, state, wait_ms = self._run(settings, "acquire")
        except _fleet.REDIS_ERRORS as exc:
            _outage.failed(exc, "circuit breakers fail open (calls run unguarded)")
            return Permit(self, None, "unknown", started)
        if int(allowed):
            return Permit(self, int(gen), str(state), time.monotonic())
        wait = int(wait_ms)
        if wait == -1:  # forced open: no automatic end
            retry_after = None
        elif wait == -2:  # half-open, every trial permit taken
            retry_after = self.config.half_open_retry
        else:
            retry_after = wait / 1000.0
        raise CircuitOpenError(self.name, str(state), retry_after)

    def classify(self, exc: BaseException | None) -> Outcome:
        """``s`` success, ``f`` failure, ``i`` ignored (neither; a half-open permit is freed)."""
        if exc is None:
            return "s"
        if isinstance(exc, Retry):  # self.retry(exc=...): judge the cause
            cause = exc.exc
            if not isinstance(cause, BaseException):
                return "i"
            exc = cause
        if isinstance(exc, CircuitOpenError | Ignore | Reject | Retry):
            return "i"
        if not isinstance(exc, Exception):
            return "i"  # SystemExit, KeyboardInterrupt: not the dependency's doing
        if self.config.ignore_exceptions and isinstance(exc, self.config.ignore_exceptions):
            return "i"
        return "f" if isinstance(exc, self.config.record_exceptions) else "s"

    def record(self, permit: Permit, exc: BaseException | None = None,
               settings: WardenSettings | None = None) -> str | None:
        """Report how a permitted call ended (one round trip); returns the state after it."""
        if permit.generation is None:
            return None
        duration = time.monotonic() - permit.started
        slow = self.config.slow_call_duration
        is_slow = 1 if slow is not None and duration >= slow else 0
        try:
            state, _changed = self._run(settings, "record", permit.generation,
                                        self.classify(exc), is_slow)
        except _fleet.REDIS_ERRORS as exc2:
            _outage.failed(exc2, "circuit breaker outcomes are not recorded")
            return None
        return str(state)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` under the breaker."""
        permit = self.acquire()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self.record(permit, exc)
            raise
        self.record(permit)
        return result

    def __call__(self, fn: F) -> F:
        """Decorator form: ``@payments`` on a function."""

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return self.call(fn, *args, **kwargs)

        return cast(F, wrapper)

    def _stack(self) -> list[Permit]:
        stack = getattr(self._local, "permits", None)
        if stack is None:
            stack = self._local.permits = []
        return cast(list[Permit], stack)

    def __enter__(self) -> CircuitBreaker:
        self._stack().append(self.acquire())
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.record(self._stack().pop(), exc)

    # -- reading and operating -------------------------------------------------------------
    def status(self, settings: WardenSettings | None = None) -> dict[str, Any]:
        """State, window counts, trips and recent transitions (see
        :func:`~celery_warden.fleet.breaker_state.read_breakers`)."""
        s = settings or self._settings or _fleet.settings_for()
        found = read_breakers(_fleet.client(s), Keys(s.key_prefix), [self.name])
        return found[0] if found else {"name": self.name, "state": "closed", "known": False}

    def force_open(self, settings: WardenSettings | None = None) -> str:
        """Refuse every call until :meth:`reset` or :meth:`force_closed` (not a trip)."""
        return str(self._run(settings, "force", "open")[0])

    def force_closed(self, settings: WardenSettings | None = None) -> str:
        """Let every call through and stop counting until :meth:`reset`."""
        return str(self._run(settings, "force", "closed")[0])

    def reset(self, settings: WardenSettings | None = None) -> str:
        """Back to closed with an empty window (also ends a forced state)."""
        return str(self._run(settings, "force", "reset")[0])


def get_breaker(name: str) -> CircuitBreaker:
    """The breaker declared under ``name`` in this process, or one with default settings."""
    found = _registry.get(name)
    return found if found is not None else CircuitBreaker(name)


def registered() -> dict[str, CircuitBreaker]:
    return dict(_registry)


def force(settings: WardenSettings, name: str, action: Action) -> str:
    """Operator action on any breaker by name: ``open``, ``closed`` or ``reset``. A name no
    task has used yet is accepted on purpose (open a breaker before planned maintenance of the
    dependency); names from task messages are not (see :mod:`celery_warden.fleet.guards`)."""
    if action not in ("open", "closed", "reset"):
        raise ValueError("action must be 'open', 'closed' or 'reset'")
    breaker = _registry.get(name) or CircuitBreaker(name, settings=settings)
    return str(breaker._run(settings, "force", action)[0])


__all__ = ["DEFAULT_FAILURE_RATE", "DEFAULT_HALF_OPEN_CALLS", "DEFAULT_MINIMUM_CALLS",
           "DEFAULT_RECOVERY_TIMEOUT", "DEFAULT_WINDOW_SIZE", "BreakerConfig", "CircuitBreaker",
           "Permit", "force", "get_breaker", "registered"]
