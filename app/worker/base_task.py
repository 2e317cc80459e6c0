"""Base task classes for the reference app's tasks (re-exported from the library)."""

from __future__ import annotations

__all__: list[str] = []
