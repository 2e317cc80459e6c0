"""Settings of the alert evaluator and the autoscaling signal (``WARDEN_ALERT_*``,
``WARDEN_TARGET_LATENCY``, ``WARDEN_AUTOSCALE_*``).

Why a module of their own: :class:`~celery_warden.settings.WardenSettings` inherits these
fields, so there is still one settings object built once and handed down, but the alerting knobs
(one per default threshold, notifier addresses, timings) are read in one place. A threshold of
``0`` switches its default rule off; ``WARDEN_ALERT_DISABLED`` switches off any rule by name.

Webhook addresses carry their secret in the path (a Slack incoming-webhook URL *is* the
credential), so they are never printed whole: :func:`mask_webhook_url` keeps the scheme, the
host and the first path segment.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from celery_warden.redaction import URL_MASK, mask_url
from celery_warden.setting_field import env_field as _field

#: Seconds between evaluations (design: "one evaluator per fleet", every 15 s).
DEFAULT_ALERT_INTERVAL = 15.0
#: Alertmanager's default ``repeat_interval``: a long-firing alert is re-sent this often.
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0
#: Settings whose value is a webhook URL (masked in every message).
SECRET_URL_VARS = frozenset({"WARDEN_ALERT_WEBHOOK_URL", "WARDEN_ALERT_SLACK_URL"})


def mask_webhook_url(url: str | None) -> str:
    """``https://hooks.slack.com/services/***``: scheme, host, port and the first path segment;
    the rest of the path, the query and any password are masked (never raises)."""
    if not url:
        return ""
    try:
        parts = urlsplit(mask_url(url))
        host = parts.netloc
    except ValueError:
        return URL_MASK
    segments = [s for s in parts.path.split("/") if s]
    shown = f"/{segments[0]}" if segments else ""
    hidden = len(segments) > 1 or bool(parts.query) or bool(parts.fragment)
    return f"{parts.scheme}://{host}{shown}" + (f"/{URL_MASK}" if hidden else "")


def masked_setting(var: str, value: Any) -> Any:
    """A setting's value as a message may show it: webhook URLs masked (they are the
    credential); anything else as given."""
    if var in SECRET_URL_VARS and isinstance(value, str):
        return mask_webhook_url(value)
    return value


class AlertSettings(BaseSettings):
    """The alerting and autoscaling fields of :class:`~celery_warden.settings.WardenSettings`."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore",
                                      populate_by_name=True, validate_default=True)

    alert_interval: float = _field(
        "WARDEN_ALERT_INTERVAL", DEFAULT_ALERT_INTERVAL,
        "Seconds between alert evaluations.", gt=0, le=3600)
    alert_webhook_url: str | None = _field(
        "WARDEN_ALERT_WEBHOOK_URL", None,
        "Webhook receiving Alertmanager-format notifications (version 4).")
    alert_slack_url: str | None = _field(
        "WARDEN_ALERT_SLACK_URL", None, "Slack incoming-webhook URL for notifications.")
    alert_rules: str | None = _field(
        "WARDEN_ALERT_RULES", None, "YAML or TOML file of custom alert rules.")
    alert_disabled: str = _field(
        "WARDEN_ALERT_DISABLED", "", "Alert rule names switched off (comma-separated).")
    alert_log: bool = _field(
        "WARDEN_ALERT_LOG", True, "Log every alert notification (WARNING, ERROR if critical).")
    alert_failure_rate: float = _field(
        "WARDEN_ALERT_FAILURE_RATE", 10.0,
        "Task failure rate (percent) above which an alert fires; 0 = off.", ge=0, le=100)
    alert_failure_min_tasks: int = _field(
        "WARDEN_ALERT_FAILURE_MIN_TASKS", 20,
        "Tasks finished in the window before the failure rate may fire.", ge=1)
    alert_failure_window: int = _field(
        "WARDEN_ALERT_FAILURE_WINDOW", 300, "Seconds of the failure-rate window.", ge=60)
    alert_queue_depth: int = _field(
        "WARDEN_ALERT_QUEUE_DEPTH", 1000,
        "Messages waiting in one queue above which an alert fires; 0 = off.", ge=0)
    alert_worker_offline: float = _field(
        "WARDEN_ALERT_WORKER_OFFLINE", 120.0,
        "Seconds a worker is offline before an alert fires; 0 = off.", ge=0)
    alert_worker_forget: float = _field(
        "WARDEN_ALERT_WORKER_FORGET", 86400.0,
        "Seconds after which an offline worker is no longer evaluated (its alert resolves).",
        gt=0)
    alert_dlq_size: int = _field(
        "WARDEN_ALERT_DLQ_SIZE", 100, "DLQ entries above which an alert fires; 0 = off.", ge=0)
    alert_duration_factor: float = _field(
        "WARDEN_ALERT_DURATION_FACTOR", 2.0,
        "Average (and p95) duration, as a multiple of the learned baseline, at which an alert "
        "fires; 0 = off.", ge=0)
    alert_duration_window: int = _field(
        "WARDEN_ALERT_DURATION_WINDOW", 900,
        "Seconds of recent executions compared with the baseline.", ge=60)
    alert_duration_min_tasks: int = _field(
        "WARDEN_ALERT_DURATION_MIN_TASKS", 10,
        "Executions in the window before a duration anomaly may fire.", ge=1)
    alert_baseline_min_samples: int = _field(
        "WARDEN_ALERT_BASELINE_MIN_SAMPLES", 50,
        "Executions in the history before a baseline is learned.", ge=1)
    alert_queue_latency: float = _field(
        "WARDEN_ALERT_QUEUE_LATENCY", 300.0,
        "Age (seconds) of the oldest waiting message above which an alert fires; 0 = off.",
        ge=0)
    alert_breaker_open: float = _field(
        "WARDEN_ALERT_BREAKER_OPEN", 300.0,
        "Seconds a circuit breaker stays open before an alert fires; 0 = off.", ge=0)
    alert_recorder_drops: int = _field(
        "WARDEN_ALERT_RECORDER_DROPS", 1,
        "Records dropped by recorders within the window at which an alert fires; 0 = off.",
        ge=0)
    alert_repeat_interval: float = _field(
        "WARDEN_ALERT_REPEAT_INTERVAL", DEFAULT_REPEAT_INTERVAL,
        "Seconds between repeated notifications of an alert that keeps firing.", gt=0)
    alert_hysteresis: float = _field(
        "WARDEN_ALERT_HYSTERESIS", 10.0,
        "Percent the value must fall back past the threshold before an alert resolves.",
        ge=0, lt=100)
    alert_history: int = _field(
        "WARDEN_ALERT_HISTORY", 1000,
        "Alert transitions (and failed notifications) kept in Redis.", ge=10, le=1_000_000)
    alert_notify_attempts: int = _field(
        "WARDEN_ALERT_NOTIFY_ATTEMPTS", 4,
        "Attempts per notification and notifier before it is recorded as failed.", ge=1, le=20)
    alert_notify_backoff: float = _field(
        "WARDEN_ALERT_NOTIFY_BACKOFF", 1.0,
        "Seconds before the first retry of a notification (doubles each retry).", gt=0, le=300)
    alert_notify_timeout: float = _field(
        "WARDEN_ALERT_NOTIFY_TIMEOUT", 10.0, "Seconds one notification request may take.",
        gt=0, le=120)
    alert_external_url: str = _field(
        "WARDEN_ALERT_EXTERNAL_URL", "",
        "Where people reach Warden (externalURL / generatorURL in notifications).")
    target_latency: float = _field(
        "WARDEN_TARGET_LATENCY", 30.0,
        "Seconds a message should wait at most: the autoscaling target.", gt=0)
    autoscale_min: int = _field(
        "WARDEN_AUTOSCALE_MIN", 1, "Fewest worker processes recommended per queue.", ge=0)
    autoscale_max: int = _field(
        "WARDEN_AUTOSCALE_MAX", 100, "Most worker processes recommended per queue.", ge=1)
    autoscale_window: int = _field(
        "WARDEN_AUTOSCALE_WINDOW", 300,
        "Seconds of history behind the arrival rate and the service time.", ge=60)
    autoscale_stabilization: float = _field(
        "WARDEN_AUTOSCALE_STABILIZATION", 300.0,
        "Seconds a lower recommendation must persist before it is given (no flapping).", ge=0)

    @field_validator("alert_webhook_url", "alert_slack_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        try:
            parts = urlsplit(value)
        except ValueError:
            raise ValueError("expected an http:// or https:// URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http:// or https:// URL")
        return value

    @field_validator("alert_rules")
    @classmethod
    def _rules_path(cls, value: str | None) -> str | None:
        return value.strip() or None if isinstance(value, str) else value

    @field_validator("autoscale_max")
    @classmethod
    def _max_over_min(cls, value: int, info: Any) -> int:
        low = info.data.get("autoscale_min")
        if low is not None and value < low:
            raise ValueError(f"it must be at least WARDEN_AUTOSCALE_MIN={low}")
        return value

    @property
    def disabled_alerts(self) -> frozenset[str]:
        """Rule names switched off by ``WARDEN_ALERT_DISABLED``."""
        return frozenset(n.strip() for n in self.alert_disabled.split(",") if n.strip())


__all__ = ["DEFAULT_ALERT_INTERVAL", "DEFAULT_REPEAT_INTERVAL", "SECRET_URL_VARS",
           "AlertSettings", "mask_webhook_url", "masked_setting"]
