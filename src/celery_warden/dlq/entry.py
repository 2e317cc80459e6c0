"""One dead-lettered task: the message to replay and why it failed.

An entry is stored as one Redis hash (``P:dlq:e:<id>``); :meth:`DLQEntry.to_hash` and
:meth:`DLQEntry.from_hash` are the only places that know its field encoding.

A hash is data from outside this process: another Warden version, a person with
``redis-cli``, a stub an older claim script left behind. :meth:`DLQEntry.from_hash` therefore
never raises; what it cannot read it names in ``broken``, and a broken entry is never replayed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
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
    "undecodable",  # the body could not be decoded
    "invalid_message",  # not a valid task message, or a content type not accepted (pickle)
    "broker_dead_letter",  # dead-lettered by RabbitMQ (rejected or expired by TTL)
    "lost_in_transit",  # Redis broker: taken off its queue by a worker killed before recording it
)
STATUSES = ("pending", "claimed", "parked", "requeued")
#: Longest traceback kept per entry (its end: where the error is named).
MAX_TRACEBACK = 16_000
#: Longest exception message kept per entry.
MAX_MESSAGE = 2_000
#: Fields without which a hash is not an entry (the dataclass has no default for them).
REQUIRED = ("id", "task_id", "reason")
#: JSON fields: the type the decoded value must have, and whether ``null`` is allowed.
_JSON_SHAPES: dict[str, tuple[type, bool]] = {
    "args": (list, True), "kwargs": (dict, True), "headers": (dict, False),
    "history": (list, False), "requeued_task_ids": (list, False), "raw": (dict, True),
}
_INTS = ("failures", "requeues", "priority")
_FLOATS = ("first_failed", "last_failed")


def _utf8(text: str) -> str:
    """``text`` as UTF-8 can carry it: a lone surrogate (an exception message built from
    undecodable bytes with ``surrogateescape``) becomes its ``\\udcff`` escape. Redis's client
    refuses such a string, which lost the whole DLQ entry."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


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
    #: Why the stored hash could not be read as an entry (``None`` for a sound entry). Set
    #: only by :meth:`from_hash` / :meth:`unreadable`, never stored.
    broken: str | None = None

    def to_hash(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in asdict(self).items():
            if value is None or key == "broken":
                continue
            out[key] = json.dumps(value) if key in _JSON_SHAPES else _utf8(str(value))
        return out

    @classmethod
    def from_hash(cls, raw: Mapping[str, str | bytes],
                  entry_id: str | None = None) -> DLQEntry:
        """The entry a hash holds. Never raises: a field that cannot be decoded keeps its
        default and is named in ``broken``, as are missing required fields and an ``id`` that
        differs from ``entry_id`` (the id in the key, which the result always carries, so the
        caller acts on the key it read). Stored values are not quoted in ``broken``: they can
        be huge, secret or markup."""
        data: dict[str, Any] = {}
        problems: list[str] = []
        for key in cls.__dataclass_fields__:
            if key == "broken" or key not in raw:
                continue
            text = _text(raw[key])
            if text is None:
                problems.append(f"{key}: not UTF-8")
                continue
            try:
                data[key] = _decode(key, text)
            except _Unreadable as exc:
                problems.append(f"{key}: {exc}")
            except (ValueError, TypeError, RecursionError):
                what = "invalid JSON" if key in _JSON_SHAPES else "not a number"
                problems.append(f"{key}: {what}")
        missing = [key for key in REQUIRED if key not in data]
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if entry_id is not None:
            if data.get("id", entry_id) != entry_id:
                problems.append("id field does not match the key")
            data["id"] = entry_id
        if not problems:
            return cls(**data)
        data.setdefault("id", "?")
        data.setdefault("task_id", data["id"])
        data.setdefault("reason", "?")
        return cls(**data, broken="; ".join(problems))

    @classmethod
    def unreadable(cls, entry_id: str, problem: str) -> DLQEntry:
        """A placeholder for a key that holds no readable hash at all (e.g. the wrong type)."""
        return cls(id=entry_id, task_id=entry_id, reason="?", broken=problem)

    def as_dict(self) -> dict[str, Any]:
        """Every field as stored (args and kwargs unmasked: this is what a requeue sends)."""
        return asdict(self)

    def mask_failure(self, redactor: Redactor) -> DLQEntry:
        """Mask secrets in the failure text — error message, traceback, retry history — and
        bound it (masked first, cut after). Only people read that text; the message fields
        (args, kwargs, headers, raw) are what a requeue replays and are left alone."""
        self.exc_message = redactor.failure_text(self.exc_message, MAX_MESSAGE)
        self.traceback = redactor.failure_text(self.traceback, MAX_TRACEBACK, keep="tail")
        self.history = redactor.redact(self.history)
        return self

    def public_dict(self, redactor: Redactor) -> dict[str, Any]:
        """Every field for people and APIs: secrets in args, kwargs, headers, the raw message
        and the failure text masked (again: an entry may have been stored before its failure
        text was masked). The stored entry is not changed, so a requeue replays the original."""
        data = asdict(self)
        for key in ("args", "kwargs", "headers", "raw", "history"):
            if data[key] is not None:
                data[key] = redactor.redact(data[key])
        for key in ("exc_message", "traceback", "note"):
            if data[key] is not None:
                data[key] = redactor.redact_text(data[key])
        return data

    @property
    def replayable(self) -> bool:
        """Whether the entry can be re-published by name (undecodable bodies cannot, and a
        broken entry is never replayed: what it would send is not known)."""
        return (self.broken is None and bool(self.name) and self.args is not None
                and self.kwargs is not None)


class EntryPage(list[DLQEntry]):
    """Entries of one listing, and what it left out: ``skipped`` malformed entries (each
    readable with ``DeadLetterQueue.get(id)``, marked ``broken``) and ``vanished`` ids whose
    entry was gone (removed from the indexes as they were met)."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped = 0
        self.vanished = 0


class _Unreadable(ValueError):
    """A field decoded, but not to what the field holds (its message says what was wrong)."""


def _text(value: str | bytes) -> str | None:
    """A stored value as text, or None if it is not UTF-8: undecoded bytes, or a str with lone
    surrogates (how the store keeps bytes that were not UTF-8)."""
    try:
        if isinstance(value, bytes):
            return value.decode()
        value.encode()
    except UnicodeError:
        return None
    return value


def _decode(key: str, value: str) -> Any:
    """One stored field as its Python value; raises ValueError/TypeError/RecursionError."""
    if key in _JSON_SHAPES:
        decoded = json.loads(value)
        kind, nullable = _JSON_SHAPES[key]
        if not isinstance(decoded, kind) and not (decoded is None and nullable):
            raise _Unreadable(f"not a JSON {'array' if kind is list else 'object'}")
        return decoded
    if key in _INTS:
        return int(value)
    if key in _FLOATS:
        number = float(value)
        if not math.isfinite(number):
            raise _Unreadable("not a finite number")
        return number
    return value


__all__ = ["MAX_MESSAGE", "MAX_TRACEBACK", "REASONS", "REQUIRED", "STATUSES", "DLQEntry",
           "EntryPage"]
