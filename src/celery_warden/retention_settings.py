"""Settings of the store's retention policy for task records (``WARDEN_SUCCESS_*``,
``WARDEN_SLOW_TASK_SECONDS``, ``WARDEN_RECORDS_MAX_MB``).

Why a policy at all: a record costs ~600 B of Redis; at 10 million tasks a day a 24 h TTL on
every record is ~6 GB. The records an operator looks for are the failed, retried, dead-lettered,
slow and still-running ones, and the recent successes; the rest is already counted in the metric
buckets, which stay exact whatever the policy. So failures and the like keep ``WARDEN_TASK_TTL``,
plain successes follow ``WARDEN_SUCCESS_RECORDS``, and a hard cap bounds the whole:

* ``all``: every success kept for ``WARDEN_TASK_TTL`` (as before the policy existed);
* ``recent`` (default): every success kept for ``WARDEN_SUCCESS_TTL``; a deterministic sample
  (``WARDEN_SUCCESS_SAMPLE_RATE``) for ``WARDEN_TASK_TTL``, so a day's history stays browsable;
* ``sample``: only the sample is kept;
* ``none``: no success record beyond the aggregates.

Like :mod:`~celery_warden.alert_settings`, :class:`~celery_warden.settings.WardenSettings`
inherits these fields, so there is still one settings object.
"""

from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

from celery_warden.setting_field import env_field as _field

SuccessPolicy = Literal["all", "recent", "sample", "none"]


class RetentionSettings(BaseSettings):
    """The retention fields of :class:`~celery_warden.settings.WardenSettings`."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore",
                                      populate_by_name=True, validate_default=True)

    success_records: SuccessPolicy = _field(
        "WARDEN_SUCCESS_RECORDS", "recent",
        "Which successful task records to keep: all, recent (default), sample or none.")
    success_ttl: int = _field(
        "WARDEN_SUCCESS_TTL", 3600,
        "Seconds a successful task's record is kept under the 'recent' policy.", ge=60)
    success_sample_rate: float = _field(
        "WARDEN_SUCCESS_SAMPLE_RATE", 0.01,
        "Share of successful tasks kept for WARDEN_TASK_TTL under 'recent' and 'sample'.",
        ge=0, le=1)
    slow_task_seconds: float = _field(
        "WARDEN_SLOW_TASK_SECONDS", 10.0,
        "A success slower than this is kept in full like a failure.", gt=0)
    records_max_mb: int = _field(
        "WARDEN_RECORDS_MAX_MB", 1024,
        "Hard cap on the Redis memory of task records (MB, 0 = none): the oldest plain "
        "successes are evicted first.", ge=0)
