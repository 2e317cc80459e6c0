"""Base task classes for the reference app's tasks (re-exported from the library).

Spec usage: ``from app.worker.base_task import RetryableTask, idempotent_task``.
"""

from __future__ import annotations

from celery_warden.errors import CircuitOpenError, DuplicateTaskError, RateLimited
from celery_warden.fleet.breaker import CircuitBreaker, get_breaker
from celery_warden.fleet.idempotency import idempotent_task
from celery_warden.tasks.base import BaseTask, CriticalTask, LongRunningTask, RetryableTask

__all__ = ["BaseTask", "CircuitBreaker", "CircuitOpenError", "CriticalTask", "DuplicateTaskError",
           "LongRunningTask", "RateLimited", "RetryableTask", "get_breaker", "idempotent_task"]
