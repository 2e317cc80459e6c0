"""Idempotent tasks: one key runs at most once to success within its TTL, fleet-wide.

The spec's form, under ``@celery_app.task`` (works with any base class)::

    @celery_app.task
    @idempotent_task(lambda order_id: f"process:{order_id}", ttl=3600)
    def process(order_id): ...

or as a task option on Warden's base classes (``idempotency_key`` is a callable taking the
task's arguments, or a ``str.format`` template over them), or per call
(``apply_async(..., warden={"idempotency_key": "order:42"})``).

Semantics (every step one Lua call on ``P:idem:<key>``, see ``lua/idempotency.lua``):

* **First run** claims the key with a *lease* and runs. Success stores the result (JSON, up to
  ``MAX_RESULT_BYTES``) for ``ttl`` seconds.
* **Duplicate after success** (within the TTL) does not run: it returns the first run's result
  (``None`` if that was not JSON-storable), its record carries ``duplicate_of`` and the metric
  bucket counts ``duplicate``.
* **Duplicate while the first is running** does not run now: it is deferred (state
  ``DEFERRED``, no retry spent) and looks again after 0.5, 1, 2, 4 ... s (never past the lease's
  end), then returns the first result — or runs itself if the first failed or died.
* **Failure** (any exception, a retry included) releases the key, so the retry — or any
  duplicate — can run.
* **A crashed holder** (worker SIGKILLed, machine gone) cannot release; its claim is a lease that
  expires: the task's hard time limit + ``LEASE_MARGIN`` (no legitimate run outlives the hard
  limit), or ``WARDEN_IDEMPOTENCY_LEASE`` for tasks without one, or ``lease=`` given here. A
  redelivery of the holder itself (same task id, after ``reject_on_worker_lost``) takes the
  claim back at once. celery-once (#147) and celery-singleton (#40, #29) leave such locks behind.

Redis unreachable or refusing writes (``READONLY``, ``OOM``), or any other Redis error:
**fail closed**. Running without the claim could run the work twice — the one thing this
primitive promises not to do — so the task is deferred until the store works again. A
completion or release that cannot be written never fails the task: the key stays claimed
until its lease ends.

Keys are global (not per task name): include the task's name in the key to separate tasks.
A direct call (``process(5)`` in the same process) or an eager one runs the body unguarded.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from celery_warden import headers as h
from celery_warden import scripts
from celery_warden.errors import DuplicateTaskError
from celery_warden.fleet import context as _fleet
from celery_warden.fleet.deferral import defer
from celery_warden.keys import Keys
from celery_warden.settings import WardenSettings

#: Seconds added to a task's hard time limit to form its lease.
LEASE_MARGIN = 10.0
#: Largest JSON result kept for duplicates (bigger ones are not stored: duplicates get None).
MAX_RESULT_BYTES = 64 * 1024
#: First wait of a duplicate whose original is still running (doubles per deferral).
DUPLICATE_POLL = 0.5
#: Wait before trying again when the store is unreachable (fail closed).
STORE_DOWN_RETRY = 5.0
#: Attribute marking a function wrapped by :func:`idempotent_task`.
SPEC_ATTR = "__warden_idempotency__"

F = TypeVar("F", bound=Callable[..., Any])
KeySource = Callable[..., Any] | str

_outage = _fleet.Outage("idempotency")


@dataclass(frozen=True, slots=True)
class IdempotencySpec:
    """How a task derives its key, and how long a key lives."""

    key: KeySource
    ttl: float | None = None
    lease: float | None = None

    def key_for(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if isinstance(self.key, str):
            value: Any = self.key.format(*args, **kwargs)
        else:
            value = self.key(*args, **kwargs)
        text = str(value)
        if not text:
            raise ValueError("an idempotency key must not be empty")
        return text


def idempotent_task(key_fn: KeySource, ttl: float | None = None, *,
                    lease: float | None = None) -> Callable[[F], F]:
    """Make a task function idempotent on ``key_fn(*args, **kwargs)`` for ``ttl`` seconds
    (default ``WARDEN_IDEMPOTENCY_TTL``). Place it *under* ``@app.task``."""
    if ttl is not None and ttl <= 0:
        raise ValueError("ttl must be > 0 seconds")
    spec = IdempotencySpec(key_fn, ttl, lease)

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from celery import current_task

            task = current_task._get_current_object() if current_task else None  # type: ignore[attr-defined]
            req = getattr(task, "request", None)
            if (task is None or req is None or req.called_directly or req.is_eager
                    or getattr(req, h.GUARDED_ATTR, False)):
                return fn(*args, **kwargs)
            key_args = args[1:] if args and args[0] is task else args  # bind=True
            return run(task, spec, key_args, kwargs, lambda: fn(*args, **kwargs))

        setattr(wrapper, SPEC_ATTR, spec)
        return cast(F, wrapper)

    return decorate


def spec_of(task: Any) -> IdempotencySpec | None:
    """The idempotency spec of a task: per call, then the task option, then the decorator."""
    opts = task.call_options() if hasattr(task, "call_options") else {}
    call_key = opts.get("idempotency_key")
    if call_key:
        ttl = opts.get("idempotency_ttl")
        return IdempotencySpec(str(call_key).replace("{", "{{").replace("}", "}}"),
                               float(ttl) if ttl else None)
    if hasattr(type(task), "_get_current_object"):  # a celery Proxy (task of an unfinalized app)
        task = task._get_current_object()
    # Read from the class: a callable stored as a task option would bind as a method otherwise.
    option = getattr(type(task), "idempotency_key", None)
    if option:
        ttl = getattr(task, "idempotency_ttl", None)
        return IdempotencySpec(option, float(ttl) if ttl else None)
    found = getattr(task.run, SPEC_ATTR, None)
    return found if isinstance(found, IdempotencySpec) else None


@dataclass(frozen=True, slots=True)
class Claim:
    """Answer of :meth:`IdempotencyStore.claim`."""

    status: str  # claimed | done | running | unavailable
    holder: str | None
    result: Any = None
    has_result: bool = False
    remaining: float = 0.0  # seconds left on the lease (running) or the TTL (done)


class IdempotencyStore:
    """Claims, completions and releases of idempotency keys (one round trip each)."""

    def __init__(self, settings: WardenSettings) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)

    def _call(self, key: str, *args: Any) -> list[Any]:
        conn = _fleet.client(self.settings)
        return cast(list[Any], scripts.script(conn, "idempotency")(
            keys=[self.keys.idem(key)], args=list(args)))

    def claim(self, key: str, task_id: str, lease: float) -> Claim:
        if _outage.active:
            return Claim("unavailable", None)
        try:
            status, holder, raw, has, pttl = self._call(key, "claim", task_id,
                                                        max(1, int(lease * 1000)))
        except _fleet.REDIS_ERRORS as exc:
            _outage.failed(exc, "idempotent tasks are deferred until the store works again "
                                "(fail closed)")
            return Claim("unavailable", None)
        result = None
        if int(has):
            try:
                result = json.loads(raw)
            except ValueError:
                has = 0
        return Claim(str(status), str(holder) if holder else None, result, bool(int(has)),
                     max(0.0, int(pttl) / 1000.0))

    def complete(self, key: str, task_id: str, result: Any, ttl: float) -> bool | None:
        """Store the first result; False if another run holds the key (our lease expired),
        None if the store failed (the key stays claimed until the lease ends; the task's own
        result is unaffected)."""
        try:
            encoded = json.dumps(result, separators=(",", ":"))
            has = len(encoded) <= MAX_RESULT_BYTES
        except (TypeError, ValueError):
            encoded, has = "", False
        try:
            (done,) = self._call(key, "done", task_id, max(1, int(ttl * 1000)),
                                 encoded if has else "", 1 if has else 0)
        except _fleet.REDIS_ERRORS as exc:
            _outage.failed(exc, "a finished key stays claimed until its lease expires")
            return None
        return bool(int(done))

    def release(self, key: str, task_id: str) -> bool:
        try:
            (released,) = self._call(key, "release", task_id)
        except _fleet.REDIS_ERRORS as exc:
            _outage.failed(exc, "a failed key stays claimed until its lease expires")
            return False
        return bool(int(released))

    def run_once(self, key: str, fn: Callable[[], Any], ttl: float | None = None,
                 lease: float | None = None, owner: str | None = None) -> Any:
        """For callers outside tasks: run ``fn`` once per key, return the first result to
        later callers, raise :class:`DuplicateTaskError` while another holder runs it."""
        import uuid

        owner = owner or uuid.uuid4().hex
        claim = self.claim(key, owner, lease or self.settings.idempotency_lease)
        if claim.status == "done":
            return claim.result
        if claim.status == "running":
            raise DuplicateTaskError(key, claim.holder, claim.remaining)
        if claim.status == "unavailable":
            raise DuplicateTaskError(key, None, STORE_DOWN_RETRY)
        try:
            result = fn()
        except BaseException:
            self.release(key, owner)
            raise
        self.complete(key, owner, result, ttl or self.settings.idempotency_ttl)
        return result


def lease_for(task: Any, spec: IdempotencySpec, settings: WardenSettings) -> float:
    """The claim's lease: explicit, else the hard time limit + margin, else the setting."""
    if spec.lease:
        return float(spec.lease)
    req = task.request
    hard = (req.timelimit or (None, None))[0] if getattr(req, "timelimit", None) else None
    hard = hard or getattr(task, "time_limit", None) or task.app.conf.task_time_limit
    return float(hard) + LEASE_MARGIN if hard else settings.idempotency_lease


def run(task: Any, spec: IdempotencySpec, args: tuple[Any, ...], kwargs: dict[str, Any],
        call: Callable[[], Any]) -> Any:
    """The worker-side flow for one delivery (see the module docstring)."""
    settings = _fleet.settings_for(task.app)
    store = IdempotencyStore(settings)
    req = task.request
    key = spec.key_for(args, kwargs)
    claim = store.claim(key, req.id, lease_for(task, spec, settings))
    if claim.status == "unavailable":
        _fleet.observe(task, "deferred_store")
        defer(task, STORE_DOWN_RETRY, f"idempotency store unreachable (key {key})",
              max_defer=settings.max_defer)
    if claim.status == "done":
        _fleet.observe(task, "duplicate", {"duplicate_of": claim.holder or "",
                                           "idempotency_key": key})
        return claim.result
    if claim.status == "running":
        poll = DUPLICATE_POLL * 2 ** min(h.defers(req), 10)
        wait = min(poll, claim.remaining + 0.05)
        _fleet.observe(task, "deferred_duplicate", {"idempotency_key": key})
        defer(task, wait, f"duplicate of {claim.holder} (still running, key {key})",
              max_defer=settings.max_defer)
    try:
        result = call()
    except BaseException:
        store.release(key, req.id)
        raise
    if store.complete(key, req.id, result, spec.ttl or settings.idempotency_ttl) is False:
        _fleet.observe(task, "lease_lost")
    return result


__all__ = ["DUPLICATE_POLL", "LEASE_MARGIN", "MAX_RESULT_BYTES", "Claim", "IdempotencySpec",
           "IdempotencyStore", "idempotent_task", "lease_for", "run", "spec_of"]
