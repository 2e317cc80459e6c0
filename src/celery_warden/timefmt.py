"""How times leave Warden: ISO 8601 in UTC with a ``Z`` (API, CLI, dashboard, alerts)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def iso(ts: Any) -> str | None:
    """Epoch seconds (a number or the string the store keeps) as ``2026-11-28T03:48:12.5Z``;
    ``None`` for a missing or unreadable value."""
    if ts is None or ts == "":
        return None
    try:
        value = float(ts)
    except (TypeError, ValueError):
        return None
    return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")


__all__ = ["iso"]
