"""Example tasks: the spec's ``example.add`` and a few realistic shapes of work.

The demo's workload mixes them: quick successes, slow I/O-like calls, a flaky dependency that
retries, and a task that always fails, so every number the monitor shows moves.
"""

from __future__ import annotations

import random
import time
from typing import Any

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
