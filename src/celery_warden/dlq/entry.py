"""One dead-lettered task: the message to replay and why it failed.

An entry is stored as one Redis hash (``P:dlq:e:<id>``); :meth:`DLQEntry.to_hash` and
:meth:`DLQEntry.from_hash` are the only places that know its field encoding.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from celery_warden.redaction import Redactor

#: Why an entry is in the DLQ.
REASONS = (
    "max_retries",  # retries exhausted
    "exception",  # a non-retryable exception
    "soft_time_limit",  # SoftTimeLimitExceeded not handled by the task
    "time_limit",  # hard time limit: the pool child was killed
    "worker_lost",  # the pool child died and the task may not be retried
    "poison_pill",  # delivered more than WARDEN_MAX_DELIVERIES times
    "unknown_task",  # no task registered under the message's name
    "undecodable",  # the body could not be decoded (or content type not accepted)
    "invalid_message",  # a message that is not a valid task message
    "broker_dead_letter",  # dead-lettered by RabbitMQ (rejected or expired by TTL)
)
STATUSES = ("pending", "claimed", "parked", "requeued")
#: Longest traceback kept per entry.
MAX_TRACEBACK = 16_000


@dataclass
class DLQEntry:
    """One dead-lettered task: the message to replay and why it failed."""

    id: str
    task_id: str
    reason: str
    name: str | None = None
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    queue: str | None = None
    exchange: str | None = None
    routing_key: str | None = None
    priority: int | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    exc_type: str | None = None
    exc_message: str | None = None
    traceback: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    worker: str | None = None
    first_failed: float = 0.0
    last_failed: float = 0.0
    failures: int = 1
    requeues: int = 0
    status: str = "pending"
    requeued_task_ids: list[str] = field(default_factory=list)
    raw: dict[str, Any] | None = None
    note: str | None = None

    _JSON = ("args", "kwargs", "headers", "history", "requeued_task_ids", "raw")

    def to_hash(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in asdict(self).items():
            if value is None:
                continue
            out[key] = json.dumps(value) if key in self._JSON else str(value)
        return out

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> DLQEntry:
        data: dict[str, Any] = {}
        for key in cls.__dataclass_fields__:
            if key not in raw:
                continue
            value: Any = raw[key]
            if key in cls._JSON:
                value = json.loads(value)
            elif key in ("failures", "requeues", "priority"):
                value = int(value)
            elif key in ("first_failed", "last_failed"):
                value = float(value)
            data[key] = value
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        """Every field as stored (args and kwargs unmasked: this is what a requeue sends)."""
        return asdict(self)

    def public_dict(self, redactor: Redactor) -> dict[str, Any]:
        """Every field for people and APIs: secrets in args, kwargs, headers and the raw
        message masked. The stored entry is not changed, so a requeue replays the original."""
        data = asdict(self)
        for key in ("args", "kwargs", "headers", "raw"):
            if data[key] is not None:
                data[key] = redactor.redact(data[key])
        return data

    @property
    def replayable(self) -> bool:
        """Whether the entry can be re-published by name (undecodable bodies cannot)."""
        return bool(self.name) and self.args is not None and self.kwargs is not None


__all__ = ["MAX_TRACEBACK", "REASONS", "STATUSES", "DLQEntry"]
