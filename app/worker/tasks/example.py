"""Example tasks: the spec's ``example.add`` and a few realistic shapes of work.

The demo's workload mixes them: quick successes, slow I/O-like calls, a flaky dependency that
retries, and a task that always fails, so every number the monitor shows moves.
"""

from __future__ import annotations

import random
import time
from typing import Any

from app.worker.base_task import CircuitBreaker, RetryableTask, idempotent_task
from app.worker.celery_app import celery_app


@celery_app.task(name="example.add")
def add(x: float, y: float) -> float:
    """Add two numbers (the spec's example)."""
    return x + y


@celery_app.task(name="example.slow")
def slow(seconds: float = 0.5) -> float:
    """Simulate I/O-bound work of a known duration."""
    time.sleep(seconds)
    return seconds


@celery_app.task(name="example.flaky", bind=True, max_retries=3)
def flaky(self: Any, failure_rate: float = 0.3) -> str:
    """Call a dependency that fails now and then; retry with a short backoff."""
    if random.random() < failure_rate:
        raise self.retry(exc=ConnectionError("upstream refused the connection"),
                         countdown=0.2 * (2 ** self.request.retries))
    return "ok"


@celery_app.task(name="example.always_fails")
def always_fails(order_id: int) -> None:
    """A task with a bug: it always raises."""
    raise ValueError(f"order {order_id} has no line items")


@celery_app.task(name="example.process_order")
def process_order(order_id: int, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Total an order: a realistic CPU-light task with structured input."""
    total = sum(float(i.get("price", 0)) * int(i.get("qty", 1)) for i in items)
    return {"order_id": order_id, "total": round(total, 2), "lines": len(items)}


@celery_app.task(name="example.urgent_ping", priority=9)
def urgent_ping() -> str:
    """A high-priority task (priority 9 of 0..10, 10 most urgent)."""
    return "pong"


# -- fleet-wide resilience (state in Redis, shared by every worker) -----------------------------

#: The payment provider's circuit breaker: opens when half of the last 20 calls failed (after at
#: least 10), stays open 30 s, then lets 3 trial calls through across the whole fleet.
payments_api = CircuitBreaker("payments-api", failure_rate_threshold=50, minimum_calls=10,
                              window_size=20, recovery_timeout=30, half_open_calls=3)


@celery_app.task(name="example.process")
@idempotent_task(lambda x: f"process:{x}")
def process(x: int) -> dict[str, Any]:
    """The spec's idempotent task: one run per ``x`` per TTL, fleet-wide; duplicates get the
    first run's result."""
    time.sleep(0.1)
    return {"processed": x, "at": time.time()}


@celery_app.task(name="example.charge_card", base=RetryableTask, circuit_breaker="payments-api")
def charge_card(order_id: int, failure_rate: float = 0.0) -> str:
    """Calls the payment provider behind the ``payments-api`` breaker: while it is open the task
    is deferred (state DEFERRED, no retry spent) instead of hammering a provider that is down."""
    if random.random() < failure_rate:
        raise ConnectionError("payments-api: 503 Service Unavailable")
    return f"charged order {order_id}"


@celery_app.task(name="example.refund", base=RetryableTask)
def refund(order_id: int) -> str:
    """The context-manager form: only the provider call is guarded."""
    with payments_api:
        return f"refunded order {order_id}"


@celery_app.task(name="example.send_receipt", base=RetryableTask, fleet_rate_limit="100/m")
def send_receipt(order_id: int) -> str:
    """At most 100 receipts a minute across the whole fleet (the mail provider's quota)."""
    return f"receipt for order {order_id}"


@celery_app.task(name="example.eventually", bind=True, base=RetryableTask,
                 retry_for=(ConnectionError,), backoff_base=0.1, backoff_cap=1.0)
def eventually(self: Any, key: str, failures: int = 2) -> str:
    """Fails with a transient error on its first ``failures`` attempts, then succeeds:
    RetryableTask retries it with exponential backoff and full jitter, recording each attempt
    in the retry history (the self-test's retry check)."""
    if self.request.retries < failures:
        raise ConnectionError(f"{key}: dependency not ready (attempt {self.request.retries + 1})")
    return f"{key}: done"
