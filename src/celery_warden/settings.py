"""Typed settings built once from the environment and passed in.

The spec's variable names are honoured exactly (``CELERY_LOG_LEVEL``, ``CELERY_JSON_LOGS``,
``REDIS_URL``, ``CELERY_WORKER_CONCURRENCY``, ``CELERY_WORKER_PREFETCH``); everything Warden adds
lives under ``WARDEN_*``. Nothing here is read at import time: build a :class:`WardenSettings`
with :func:`load_settings` (or construct it directly in code) and hand it to ``Warden`` and
``CeleryMonitor``. An invalid value fails at start-up with a :class:`SettingsError` that names the
variable and the values it accepts, instead of a pydantic traceback, and shows no secret.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import AliasChoices, ValidationError, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from celery_warden.alert_settings import AlertSettings, masked_setting
from celery_warden.api_settings import ApiSettings
from celery_warden.errors import SettingsError
from celery_warden.rates import parse_queue_rates
from celery_warden.redaction import Redactor
from celery_warden.retention_settings import RetentionSettings
from celery_warden.setting_field import env_field as _field

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
#: Which arguments Warden declares on its RabbitMQ queues (see celery_warden.config).
QueueArguments = Literal["priority", "all", "none"]

#: Default Redis address; also what the embedded fallback replaces when nothing answers there.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: Task records live one day by default (design: "Task records expire (default 24 h)").
DEFAULT_TASK_TTL = 24 * 3600
#: Per-minute metric buckets are kept 7 days; hourly roll-ups 90 days.
DEFAULT_METRICS_RETENTION = 7 * 24 * 3600
DEFAULT_ROLLUP_RETENTION = 90 * 24 * 3600
#: The flusher writes at least this often (design: "<= 250 ms").
DEFAULT_FLUSH_INTERVAL = 0.25
#: Records buffered per process while Redis is unreachable before the oldest are dropped.
DEFAULT_BUFFER_SIZE = 10_000
DEFAULT_HEARTBEAT_INTERVAL = 10.0
#: A worker whose last heartbeat is older than this is reported offline (3 missed beats).
DEFAULT_OFFLINE_AFTER = 30.0
_REDACTOR = Redactor()  # settings messages: printed by `warden status`, in workers' tracebacks


class WardenSettings(ApiSettings, AlertSettings, RetentionSettings):
    """Every knob Warden reads (alerting, retention and API ones inherited)."""

    model_config = SettingsConfigDict(
        case_sensitive=False,
        extra="ignore",
        populate_by_name=True,
        validate_default=True,
    )

    log_level: LogLevel = _field("CELERY_LOG_LEVEL", "INFO", "Log level.")
    json_logs: bool = _field("CELERY_JSON_LOGS", False, "One JSON object per log line.")
    redis_url: str = _field("REDIS_URL", DEFAULT_REDIS_URL, "Redis for Warden's store.")
    broker_url: str | None = _field("CELERY_BROKER_URL", None,
                                    "Celery broker; defaults to REDIS_URL.")
    result_backend: str | None = _field("CELERY_RESULT_BACKEND", None,
                                        "Celery result backend; defaults to REDIS_URL.")
    worker_concurrency: int = _field(
        "CELERY_WORKER_CONCURRENCY", 4, "Worker pool processes.", ge=1, le=1024
    )
    worker_prefetch: int = _field(
        "CELERY_WORKER_PREFETCH", 1, "Messages prefetched per pool process.", ge=1, le=1000
    )
    key_prefix: str = _field(
        "WARDEN_KEY_PREFIX", "warden", "Prefix of every Redis key Warden writes.",
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$",
    )
    queue_prefix: str = _field(
        "WARDEN_QUEUE_PREFIX", "", "Prefix for the queue names (isolates fleets on one broker).",
        max_length=64, pattern=r"^[A-Za-z0-9_.\-]*$",
    )
    broker_key_prefix: str = _field(
        "WARDEN_BROKER_KEY_PREFIX", "",
        "Prefix for the Redis broker's and result backend's keys (fleets sharing one Redis).",
        max_length=64, pattern=r"^[A-Za-z0-9_.:\-]*$",
    )
    task_ttl: int = _field(
        "WARDEN_TASK_TTL", DEFAULT_TASK_TTL, "Seconds a task record is kept.", ge=60
    )
    metrics_retention: int = _field(
        "WARDEN_METRICS_RETENTION", DEFAULT_METRICS_RETENTION,
        "Seconds per-minute metric buckets are kept.", ge=3600,
    )
    rollup_retention: int = _field(
        "WARDEN_ROLLUP_RETENTION", DEFAULT_ROLLUP_RETENTION,
        "Seconds hourly metric roll-ups are kept.", ge=3600,
    )
    flush_interval: float = _field(
        "WARDEN_FLUSH_INTERVAL", DEFAULT_FLUSH_INTERVAL,
        "Seconds between store flushes.", gt=0, le=5,
    )
    buffer_size: int = _field(
        "WARDEN_BUFFER_SIZE", DEFAULT_BUFFER_SIZE,
        "Records buffered per process while Redis is unreachable.", ge=100, le=10_000_000,
    )
    heartbeat_interval: float = _field(
        "WARDEN_HEARTBEAT_INTERVAL", DEFAULT_HEARTBEAT_INTERVAL,
        "Seconds between worker heartbeats.", gt=0, le=300,
    )
    offline_after: float = _field(
        "WARDEN_WORKER_OFFLINE_AFTER", DEFAULT_OFFLINE_AFTER,
        "Seconds without heartbeat before a worker is offline.", gt=0,
    )
    result_expires: int = _field(
        "WARDEN_RESULT_EXPIRES", 24 * 3600, "Seconds Celery keeps task results.", ge=60
    )
    queue_message_ttl: int = _field(
        "WARDEN_QUEUE_MESSAGE_TTL", 7 * 24 * 3600,
        "Seconds a message may wait in a RabbitMQ queue before it is dead-lettered.", ge=1,
    )
    rabbitmq_queue_arguments: QueueArguments = _field(
        "WARDEN_RABBITMQ_QUEUE_ARGUMENTS", "priority",
        "RabbitMQ: arguments Warden declares on its queues: priority (x-max-priority; message "
        "TTL and dead-lettering come from a policy), all (also x-message-ttl and "
        "x-dead-letter-*), none (adopt queues that exist without arguments).",
    )
    dlq_max_age: int = _field(
        "WARDEN_DLQ_MAX_AGE", 7 * 24 * 3600,
        "Seconds a DLQ entry is kept before the expiry task removes it.", ge=60,
    )
    dlq_max_requeues: int = _field(
        "WARDEN_DLQ_MAX_REQUEUES", 3,
        "Automatic requeues of one DLQ entry before it is parked for manual review.", ge=0,
    )
    max_deliveries: int = _field(
        "WARDEN_MAX_DELIVERIES", 3,
        "Deliveries of one message (redeliveries after a lost worker) before it goes to the "
        "DLQ as a poison pill.", ge=1, le=1000,
    )
    dlq_claim_lease: float = _field(
        "WARDEN_DLQ_CLAIM_LEASE", 60.0,
        "Seconds a DLQ processor holds a claimed entry before another may take it.", gt=0,
    )
    dlq_all_tasks: bool = _field(
        "WARDEN_DLQ_ALL_TASKS", False,
        "Dead-letter final failures of every task, not only Warden base-class tasks.",
    )
    visibility_timeout: int = _field(
        "WARDEN_VISIBILITY_TIMEOUT", 3600,
        "Redis broker: seconds before an unacknowledged message (its worker died) is delivered "
        "again.", ge=1,
    )
    lost_in_transit_after: float = _field(
        "WARDEN_LOST_IN_TRANSIT_AFTER", 900.0, "Redis broker: seconds after its publish before "
        "a task no worker received, found neither in its queue nor among unacknowledged "
        "messages, is filed in the DLQ as lost_in_transit (0 = never look).", ge=0)
    track_sent: bool = _field(
        "WARDEN_TRACK_SENT", True, "Record a SENT state when a task is published."
    )
    redact_keys: str = _field(
        "WARDEN_REDACT_KEYS", "",
        "Extra key names whose values are masked in logs and task args (comma-separated).",
    )
    log_flood_limit: int = _field(
        "WARDEN_LOG_FLOOD_LIMIT", 10,
        "Identical warning/error log lines written per window before summarising (0 = off).",
        ge=0, le=1_000_000,
    )
    log_flood_window: float = _field("WARDEN_LOG_FLOOD_WINDOW", 60.0,
                                     "Seconds of one log flood-control window.", gt=0, le=86400)
    spool_dir: str = _field("WARDEN_SPOOL_DIR", "", "Worker processes' spool directory (empty: "
                            "celery-warden-<uid> in the temp dir; off: no spool).")
    spool_max_mb: int = _field("WARDEN_SPOOL_MAX_MB", 64, "Megabytes of unwritten spool a worker "
                               "process keeps while the store is away.", ge=1, le=1_000_000)
    store_deadline: float = _field("WARDEN_STORE_DEADLINE", 0.2, "Seconds a Redis call on a "
                                   "task's path may take before its fallback.", gt=0, le=5)
    otel: bool = _field(
        "WARDEN_OTEL", False, "OpenTelemetry tracing of Celery (needs celery-warden[otel])."
    )
    idempotency_ttl: int = _field(
        "WARDEN_IDEMPOTENCY_TTL", 24 * 3600,
        "Seconds an idempotency key remembers its first successful result.", ge=1,
    )
    idempotency_lease: float = _field(
        "WARDEN_IDEMPOTENCY_LEASE", 600.0,
        "Seconds a running idempotent task holds its key when the task has no hard time limit.",
        gt=0,
    )
    queue_rate_limits: str = _field(
        "WARDEN_QUEUE_RATE_LIMITS", "",
        "Fleet-wide rate limits per queue, e.g. 'default=100/m,low_priority=5/s'.",
    )
    max_defer: float = _field(
        "WARDEN_MAX_DEFER", 300.0,
        "Longest countdown of one deferral (circuit open, rate limited, duplicate running).",
        gt=0, le=86400,
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        # Celery's worker overwrites CELERY_LOG_LEVEL with the numeric level ("20", or "" for
        # none) for its pool children; accept that too.
        if isinstance(value, str) and not value.strip():
            return "INFO"
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
            name = logging.getLevelName(int(value))
            return name if isinstance(name, str) and not name.startswith("Level") else value
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("rabbitmq_queue_arguments", mode="before")
    @classmethod
    def _lower_mode(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    # Field validators, not a model validator: pydantic skips "after" model validators when any
    # field is invalid, which would leave these out of the list of everything that is wrong.
    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://", "valkey://")):
            raise ValueError("expected a redis://, rediss://, valkey:// or unix:// URL")
        return value

    @field_validator("queue_rate_limits")
    @classmethod
    def _queue_rates(cls, value: str) -> str:
        parse_queue_rates(value)  # raises ValueError naming the bad entry
        return value

    @field_validator("offline_after")
    @classmethod
    def _after_heartbeat(cls, value: float, info: ValidationInfo) -> float:
        heartbeat = info.data.get("heartbeat_interval")  # absent when itself invalid
        if heartbeat is not None and value <= heartbeat:
            raise ValueError(
                f"it must be greater than WARDEN_HEARTBEAT_INTERVAL={heartbeat}"
            )
        return value

    @property
    def effective_broker_url(self) -> str:
        """The broker URL, falling back to ``REDIS_URL`` as the spec says."""
        return self.broker_url or self.redis_url

    @property
    def effective_result_backend(self) -> str:
        return self.result_backend or self.redis_url

    @property
    def broker_is_redis(self) -> bool:
        return self.effective_broker_url.split("://", 1)[0] in {
            "redis", "rediss", "valkey", "unix", "redis+socket", "sentinel",
        }


def env_var_for(field_name: str) -> str:
    """The environment variable behind a settings field (for messages and docs)."""
    alias = WardenSettings.model_fields[field_name].validation_alias
    if isinstance(alias, AliasChoices):
        first = alias.choices[0]
        return first if isinstance(first, str) else field_name.upper()
    return field_name.upper()


def _describe(error: dict[str, Any]) -> str:
    loc = error.get("loc") or ()
    name = str(loc[0]) if loc else ""
    var = env_var_for(name) if name in WardenSettings.model_fields else name.upper()
    shown = _REDACTOR.assignment(var, masked_setting(var, error.get("input")))
    ctx = error.get("ctx") or {}
    kind = error.get("type", "")
    if kind == "literal_error":
        accepted = ctx.get("expected", "")
        return f"{shown} is invalid: expected one of {accepted}"
    if kind.startswith("bool"):
        return f"{shown} is invalid: expected true/false (also 1/0, yes/no, on/off)"
    if kind in {"greater_than_equal", "greater_than", "less_than_equal", "less_than"}:
        return f"{shown} is invalid: {error.get('msg', '').lower()}"
    if kind.startswith(("int_", "float_")):
        return f"{shown} is invalid: expected a number ({error.get('msg', '')})"
    if kind == "string_pattern_mismatch":
        return f"{shown} is invalid: allowed characters are letters, digits and _.:-"
    if not name:
        return str(error.get("msg", "")).removeprefix("Value error, ")
    msg = str(error.get("msg", "")).removeprefix("Value error, ")
    return f"{shown} is invalid: {msg}"


def load_settings(**overrides: Any) -> WardenSettings:
    """Build settings from the environment (and keyword overrides), or raise SettingsError.

    The error message lists every invalid variable with what it accepts, one per line.
    """
    try:
        return WardenSettings(**overrides)
    except ValidationError as exc:
        lines = [_describe(dict(e)) for e in exc.errors()]
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None


__all__ = ["QueueArguments", "WardenSettings", "env_var_for", "load_settings"]
