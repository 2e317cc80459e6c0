"""Settings of ``warden serve``: open reads, open ``/metrics``, sessions and the audit log
(``WARDEN_API_*``, ``WARDEN_METRICS_OPEN``, ``WARDEN_AUDIT_MAX_AGE``).

Why a module of their own: like :mod:`celery_warden.alert_settings`, these are inherited by
:class:`~celery_warden.settings.WardenSettings`, so there is still one settings object, but the
API's knobs are read in one place. Both "open" switches default to off: a read needs a token
unless an operator says otherwise (the demo does, on loopback only, and says so).
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Seconds a dashboard session cookie stays valid (it also ends when its token is revoked).
DEFAULT_SESSION_TTL = 12 * 3600
#: Seconds the audit log keeps an entry (30 days).
DEFAULT_AUDIT_MAX_AGE = 30 * 24 * 3600


def _field(alias: str, default: Any, description: str, **kw: Any) -> Any:
    return Field(default=default, validation_alias=AliasChoices(alias),
                 description=description, **kw)


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


__all__ = ["ApiSettings"]
