"""Settings of ``warden serve``: open reads, open ``/metrics``, sessions and the audit log
(``WARDEN_API_*``, ``WARDEN_METRICS_OPEN``, ``WARDEN_AUDIT_MAX_AGE``).

Why a module of their own: like :mod:`celery_warden.alert_settings`, these are inherited by
:class:`~celery_warden.settings.WardenSettings`, so there is still one settings object, but the
API's knobs are read in one place. Both "open" switches default to off: a read needs a token
unless an operator says otherwise (the demo does, on loopback only, and says so).
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from celery_warden.setting_field import env_field as _field

#: Seconds a dashboard session cookie stays valid (it also ends when its token is revoked).
DEFAULT_SESSION_TTL = 12 * 3600
#: Seconds the audit log keeps an entry (30 days).
DEFAULT_AUDIT_MAX_AGE = 30 * 24 * 3600
#: Seconds a worker's online/offline transitions are kept (7 days).
DEFAULT_WORKER_HISTORY_MAX_AGE = 7 * 24 * 3600


class ApiSettings(BaseSettings):
    """The knobs of the API server (inherited by ``WardenSettings``)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore",
                                      populate_by_name=True, validate_default=True)

    api_open_reads: bool = _field(
        "WARDEN_API_OPEN_READS", False,
        "Read endpoints of `warden serve` answer without a token (mutations always need one).",
    )
    metrics_open: bool = _field(
        "WARDEN_METRICS_OPEN", False, "`/metrics` answers without a `metrics` token.",
    )
    session_ttl: int = _field(
        "WARDEN_SESSION_TTL", DEFAULT_SESSION_TTL,
        "Seconds a dashboard session cookie stays valid.", ge=60, le=30 * 24 * 3600,
    )
    serve_alerts: bool = _field(
        "WARDEN_SERVE_ALERTS", True,
        "`warden serve` runs the alert evaluator (one per fleet holds the lease).",
    )
    audit_max_age: int = _field(
        "WARDEN_AUDIT_MAX_AGE", DEFAULT_AUDIT_MAX_AGE,
        "Seconds the API's audit log keeps an entry.", ge=3600,
    )
    serve_sampler: bool = _field(
        "WARDEN_SERVE_SAMPLER", True,
        "`warden serve` samples queue depth and worker up/down history and runs the retention "
        "sweep (one replica per fleet holds the lease).",
    )
    queue_sample_interval: float = _field(
        "WARDEN_QUEUE_SAMPLE_INTERVAL", 15.0,
        "Seconds between two samples of every queue's depth and the workers' status.",
        ge=1.0, le=3600,
    )
    serve_retention_interval: float = _field(
        "WARDEN_SERVE_RETENTION_INTERVAL", 60.0,
        "Seconds between two retention sweeps run by the sampling replica (0 = never).",
        ge=0, le=24 * 3600,
    )
    worker_history_max: int = _field(
        "WARDEN_WORKER_HISTORY_MAX", 1000,
        "Worker online/offline transitions kept fleet-wide (100 per worker).", ge=10, le=100_000,
    )
    worker_history_max_age: int = _field(
        "WARDEN_WORKER_HISTORY_MAX_AGE", DEFAULT_WORKER_HISTORY_MAX_AGE,
        "Seconds a worker online/offline transition is kept.", ge=3600,
    )


__all__ = ["ApiSettings"]
