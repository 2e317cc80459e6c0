"""Maintenance tasks run by beat (routed to ``low_priority``)."""

from __future__ import annotations

import logging
from typing import Any

from app.worker.celery_app import celery_app
from app.worker.config import settings
from celery_warden.maintenance import prune_store

logger = logging.getLogger(__name__)


@celery_app.task(name="maintenance.prune_store")
def prune_store_task() -> dict[str, int]:
    """Trim Warden's indexes of entries whose records have expired."""
    return prune_store(settings)


@celery_app.task(name="maintenance.log_kpis")
def log_kpis() -> dict[str, Any]:
    """Log the fleet KPIs once a minute (a cheap heartbeat of the whole system)."""
    from app.worker.monitoring import monitor

    kpis = monitor.get_kpis("5m")
    logger.info(
        "fleet kpis: success_rate=%s retry_rate=%s queue_depth=%s utilization=%s",
        kpis["task_success_rate"]["value"], kpis["retry_rate"]["value"],
        kpis["queue_depth"]["value"], kpis["worker_utilization"]["value"],
    )
    return {k: v["value"] for k, v in kpis.items() if isinstance(v, dict) and "value" in v
            and not isinstance(v["value"], dict)}
