"""Small conversions the signal handlers share: exception fields, ETA times, a bounded memory."""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Any

from celery_warden.redaction import Redactor

#: Longest exception message kept in a task record.
MAX_MESSAGE = 500


def epoch(value: Any) -> float | None:
    """An ETA header (ISO string) or number as epoch seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def exc_fields(exc: BaseException | None, redactor: Redactor) -> dict[str, str]:
    """Exception type and message for a record, secrets in the message masked (then cut)."""
    if exc is None:
        return {}
    return {"exc_type": type(exc).__name__,
            "exc_msg": redactor.failure_text(str(exc), MAX_MESSAGE) or ""}


class Bounded(OrderedDict[Any, Any]):
    """An insertion-ordered dict that forgets its oldest entries past ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        if len(self) > self.limit:
            self.popitem(last=False)


__all__ = ["MAX_MESSAGE", "Bounded", "epoch", "exc_fields"]
