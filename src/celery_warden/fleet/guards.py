"""The fleet primitives around a task body: what ``BaseTask.__call__`` runs.

Order, outermost first, and why:

1. **Idempotency** (``idempotency_key`` option or ``@idempotent_task``): a duplicate whose first
   run succeeded returns that result without spending a rate-limit slot or a breaker permit.
2. **Fleet rate limit** (``fleet_rate_limit`` option, ``WARDEN_QUEUE_RATE_LIMITS``): reserve a
   slot, or defer to it.
3. **Circuit breaker** (``circuit_breaker`` option): ask for a permit, or defer until the breaker
   may let a call through; the body's outcome is reported to the breaker.
4. The body. A breaker used *inside* it (``with payments:``) that refuses raises
   :class:`~celery_warden.errors.CircuitOpenError`; the task is deferred as well (work done
   before the ``with`` runs again, as it would on a retry).

A deferral in step 2 or 3 releases the idempotency claim of step 1 (the ``Ignore`` it raises
passes through ``idempotency.run``'s failure path), so duplicates are never blocked by a task
that is merely waiting.

Only worker deliveries are guarded. A direct or eager call runs the body, except that a
``circuit_breaker`` option still applies and raises ``CircuitOpenError`` to the caller.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, NoReturn

from celery_warden import headers as h
from celery_warden.errors import CircuitOpenError
from celery_warden.fleet import context as _fleet
from celery_warden.fleet import idempotency
from celery_warden.fleet.breaker import CircuitBreaker, get_breaker, registered
from celery_warden.fleet.deferral import defer, held_slot, slot_header
from celery_warden.fleet.rate_limit import SLOT_TOLERANCE, FleetRateLimiter
from celery_warden.settings import WardenSettings

logger = logging.getLogger("celery_warden.fleet")

_limiters: dict[int, FleetRateLimiter] = {}


def _option(task: Any, name: str) -> Any:
    option = getattr(task, "option", None)
    return option(name) if option is not None else getattr(task, name, None)


#: Per-call options that switch a primitive on for one call.
_CALL_GUARDS = frozenset({"idempotency_key", "circuit_breaker", "fleet_rate_limit"})
#: Where the per-task answer of :func:`_task_guarded` is cached (task options are set when the
#: task is defined and do not change at run time).
_CACHE_ATTR = "_warden_task_guarded"


def _task_guarded(task: Any) -> bool:
    """Whether the task itself configures any primitive (cached on the task object)."""
    cached = task.__dict__.get(_CACHE_ATTR)
    if cached is None:
        cached = bool(
            getattr(type(task), "idempotency_key", None)
            or getattr(task.run, idempotency.SPEC_ATTR, None)
            or getattr(task, "fleet_rate_limit", None)
            or getattr(task, "circuit_breaker", None)
        )
        task.__dict__[_CACHE_ATTR] = cached
    return bool(cached)


def _unguarded(task: Any, req: Any) -> bool:
    """The common case, decided cheaply: nothing configured on the task, in this call's
    options, or as a queue limit — the body runs with no primitive around it."""
    if _task_guarded(task):
        return False
    opts = h.options(req)
    if opts and _CALL_GUARDS.intersection(opts):
        return False
    return not _fleet.settings_for(task.app).queue_rate_limits


def call(task: Any, run: Callable[..., Any], args: tuple[Any, ...],
         kwargs: dict[str, Any]) -> Any:
    """Run ``run(*args, **kwargs)`` (the task body) under the task's fleet primitives."""
    req = task.request
    if req.called_directly or req.is_eager:
        breaker = _breaker(task)
        return breaker.call(run, *args, **kwargs) if breaker else run(*args, **kwargs)
    if _unguarded(task, req):
        return _body(task, run, args, kwargs, None)
    setattr(req, h.GUARDED_ATTR, True)
    spec = idempotency.spec_of(task)
    if spec is not None:
        return idempotency.run(task, spec, args, kwargs,
                               lambda: _limited(task, run, args, kwargs))
    return _limited(task, run, args, kwargs)


def _limited(task: Any, run: Callable[..., Any], args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Any:
    settings = _fleet.settings_for(task.app)
    rate = _option(task, "fleet_rate_limit")
    if rate or settings.queue_rate_limits:
        _rate_check(task, settings, rate)
    breaker = _breaker(task)
    if breaker is None:
        return _body(task, run, args, kwargs, settings)
    try:
        permit = breaker.acquire(settings)
    except CircuitOpenError as exc:
        _defer_open(task, exc, settings, breaker.config.recovery_timeout)
    try:
        result = _body(task, run, args, kwargs, settings)
    except BaseException as exc:
        breaker.record(permit, exc, settings)
        raise
    breaker.record(permit, None, settings)
    return result


def _breaker(task: Any) -> CircuitBreaker | None:
    """The breaker guarding this delivery. A name from the task's own options is code, so a
    breaker with default settings is made for it if none was declared; a name from the
    message (``warden={"circuit_breaker": ...}``) must name a breaker the worker's code declares
    — any producer can put any name there, and each would otherwise add a breaker to the
    fleet's registry and store for ever."""
    name = h.options(task.request).get("circuit_breaker")
    if name:
        found = registered().get(str(name))
        if found is None:
            _unknown_breakers.report(str(name), task.name)
        return found
    name = getattr(task, "circuit_breaker", None)
    return get_breaker(str(name)) if name else None


class _UnknownBreakers:
    """Warns once per name (at most ``LIMIT`` names) about per-call breaker names the code does
    not declare; the task then runs unguarded."""

    LIMIT = 100

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def report(self, name: str, task_name: str) -> None:
        if name in self.seen or len(self.seen) >= self.LIMIT:
            return
        self.seen.add(name)
        logger.warning("warden: task %s names circuit breaker %r in its message, but no breaker "
                       "of that name is declared in this worker's code; it runs unguarded",
                       task_name, name)


_unknown_breakers = _UnknownBreakers()


def _body(task: Any, run: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
          settings: WardenSettings | None) -> Any:
    try:
        return run(*args, **kwargs)
    except CircuitOpenError as exc:  # a breaker used inside the body refused
        recovery = get_breaker(exc.name).config.recovery_timeout
        _defer_open(task, exc, settings or _fleet.settings_for(task.app), recovery)


def _defer_open(task: Any, exc: CircuitOpenError, settings: WardenSettings,
                recovery: float) -> NoReturn:
    _fleet.observe(task, "deferred_circuit")
    wait = exc.retry_after if exc.retry_after is not None else recovery
    defer(task, wait, f"circuit breaker {exc.name} is {exc.state}",
          max_defer=settings.max_defer)


def _rate_check(task: Any, settings: WardenSettings, rate: str | None) -> None:
    limiter = _limiters.get(id(settings))
    if limiter is None or limiter.settings is not settings:
        limiter = _limiters[id(settings)] = FleetRateLimiter(settings)
    queue = (task.request.delivery_info or {}).get("routing_key")
    limits = limiter.limits_for(task.name, queue, rate)
    if not limits:
        return
    slot = held_slot(task)
    if slot is not None:
        early = slot - time.time()
        if early <= SLOT_TOLERANCE:
            return  # the slot reserved for this delivery has come
        defer(task, early, "rate limit slot not reached yet", max_defer=settings.max_defer,
              headers=slot_header(task, slot))
    res = limiter.reserve(limits, settings.max_defer)
    if res.reserved and res.wait <= SLOT_TOLERANCE:
        return
    _fleet.observe(task, "deferred_rate")
    labels = ", ".join(res.labels)
    if res.reserved:
        defer(task, res.wait, f"fleet rate limit ({labels}): slot reserved in {res.wait:.3f}s",
              max_defer=settings.max_defer, headers=slot_header(task, time.time() + res.wait))
    defer(task, settings.max_defer, f"fleet rate limit ({labels}): no slot within "
          f"{settings.max_defer:.0f}s", max_defer=settings.max_defer)


__all__ = ["call"]
