"""Maintenance tasks run by beat (routed to ``default``, which the spec's workers consume)."""

from __future__ import annotations

import logging
from typing import Any

from app.worker.celery_app import celery_app
from app.worker.config import settings
from celery_warden.alerts.engine import evaluate_once
from celery_warden.dlq.broker import drain_broker_dead_letters
from celery_warden.dlq.store import DeadLetterQueue
from celery_warden.record.prune import prune_store
from celery_warden.record.retention import sweep_retention

logger = logging.getLogger(__name__)


@celery_app.task(name="maintenance.prune_store")
def prune_store_task() -> dict[str, int]:
    """Trim Warden's indexes of entries whose records have expired."""
    return prune_store(settings)


@celery_app.task(name="maintenance.apply_retention")
def apply_retention_task() -> dict[str, int]:
    """WARDEN_SUCCESS_RECORDS and the WARDEN_RECORDS_MAX_MB cap (record/retention.py)."""
    return sweep_retention(settings)


@celery_app.task(name="maintenance.expire_dlq")
def expire_dlq_task() -> int:
    """Time-based DLQ expiry (WARDEN_DLQ_MAX_AGE); the count is logged, never silent."""
    expired = DeadLetterQueue(settings, app=celery_app).expire()
    if expired:
        logger.warning("expired %d DLQ entries older than %ss", expired, settings.dlq_max_age)
    return expired


@celery_app.task(name="maintenance.process_dlq")
def process_dlq_task(max_items: int = 100) -> dict[str, int]:
    """Requeue-with-backoff strategy: requeue ready entries, park those past their limit."""
    dlq = DeadLetterQueue(settings, app=celery_app)
    drained = drain_broker_dead_letters(celery_app, settings, dlq)
    counts = dlq.process(max_items=max_items, requeue=True)
    counts["drained_from_broker"] = drained
    if any(counts.values()):
        logger.info("dlq processed: %s", counts)
    return counts


@celery_app.task(name="maintenance.evaluate_alerts")
def evaluate_alerts_task() -> dict[str, Any]:
    """One alert evaluation when no evaluator (`warden serve`, `warden alerts run`) holds the
    fleet's lease; otherwise nothing (the lease holder evaluates and notifies)."""
    return evaluate_once(settings, app=celery_app)


@celery_app.task(name="maintenance.log_kpis")
def log_kpis() -> dict[str, Any]:
    """Log the fleet KPIs once a minute (a cheap heartbeat of the whole system)."""
    from app.worker.monitoring import monitor

    kpis = monitor.get_kpis("5m")
    logger.info(
        "fleet kpis: success_rate=%s retry_rate=%s queue_depth=%s utilization=%s dlq=%s",
        kpis["task_success_rate"]["value"], kpis["retry_rate"]["value"],
        kpis["queue_depth"]["value"], kpis["worker_utilization"]["value"],
        kpis["dlq_size"]["value"],
    )
    return {k: v["value"] for k, v in kpis.items() if isinstance(v, dict) and "value" in v
            and not isinstance(v["value"], dict)}
