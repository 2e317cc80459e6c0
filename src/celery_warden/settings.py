"""Typed settings built once from the environment and passed in.

The spec's variable names are honoured exactly (``CELERY_LOG_LEVEL``, ``CELERY_JSON_LOGS``,
``REDIS_URL``, ``CELERY_WORKER_CONCURRENCY``, ``CELERY_WORKER_PREFETCH``); everything Warden adds
lives under ``WARDEN_*``. Nothing here is read at import time: build a :class:`WardenSettings`
with :func:`load_settings` (or construct it directly in code) and hand it to ``Warden`` and
``CeleryMonitor``. An invalid value fails at start-up with a :class:`SettingsError` that names the
variable and the values it accepts, instead of a pydantic traceback.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from celery_warden.errors import SettingsError

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

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


def _field(alias: str, default: Any, description: str, **kw: Any) -> Any:
    return Field(
        default=default,
        validation_alias=AliasChoices(alias),
        description=description,
        **kw,
    )


class WardenSettings(BaseSettings):
    """Every knob Warden reads, with the environment variable that sets it."""

    model_config = SettingsConfigDict(
        case_sensitive=False,
        extra="ignore",
        populate_by_name=True,
        validate_default=True,
    )

    log_level: LogLevel = _field("CELERY_LOG_LEVEL", "INFO", "Log level.")
    json_logs: bool = _field("CELERY_JSON_LOGS", False, "One JSON object per log line.")
    redis_url: str = _field("REDIS_URL", DEFAULT_REDIS_URL, "Redis for Warden's store.")
    broker_url: str | None = _field(
        "CELERY_BROKER_URL", None, "Celery broker; defaults to REDIS_URL."
    )
    result_backend: str | None = _field(
        "CELERY_RESULT_BACKEND", None, "Celery result backend; defaults to REDIS_URL."
    )
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
    track_sent: bool = _field(
        "WARDEN_TRACK_SENT", True, "Record a SENT state when a task is published."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _checks(self) -> WardenSettings:
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://", "valkey://")):
            raise ValueError(
                f"REDIS_URL={self.redis_url!r} is invalid: "
                "expected a redis://, rediss://, valkey:// or unix:// URL"
            )
        if self.offline_after <= self.heartbeat_interval:
            raise ValueError(
                f"WARDEN_WORKER_OFFLINE_AFTER={self.offline_after} is invalid: it must be greater "
                f"than WARDEN_HEARTBEAT_INTERVAL={self.heartbeat_interval}"
            )
        return self

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
            "redis", "rediss", "valkey", "unix", "redis+socket",
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
    value = error.get("input")
    ctx = error.get("ctx") or {}
    kind = error.get("type", "")
    if kind == "literal_error":
        accepted = ctx.get("expected", "")
        return f"{var}={value!r} is invalid: expected one of {accepted}"
    if kind.startswith("bool"):
        return f"{var}={value!r} is invalid: expected true/false (also 1/0, yes/no, on/off)"
    if kind in {"greater_than_equal", "greater_than", "less_than_equal", "less_than"}:
        return f"{var}={value!r} is invalid: {error.get('msg', '').lower()}"
    if kind.startswith(("int_", "float_")):
        return f"{var}={value!r} is invalid: expected a number ({error.get('msg', '')})"
    if kind == "string_pattern_mismatch":
        return f"{var}={value!r} is invalid: allowed characters are letters, digits and _.:-"
    if not name:
        return str(error.get("msg", "")).removeprefix("Value error, ")
    return f"{var}={value!r} is invalid: {error.get('msg', '')}"


def load_settings(**overrides: Any) -> WardenSettings:
    """Build settings from the environment (and keyword overrides), or raise SettingsError.

    The error message lists every invalid variable with what it accepts, one per line.
    """
    try:
        return WardenSettings(**overrides)
    except ValidationError as exc:
        lines = [_describe(dict(e)) for e in exc.errors()]
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None


__all__ = ["WardenSettings", "env_var_for", "load_settings"]
