"""One helper for every settings class: a field read from one environment variable.

Why: ``WardenSettings`` is assembled from several classes (alerting, API, retention and the
core), each declaring its fields the same way — the variable name as the only alias, a default
and a description that `warden status` and the README's table show.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field


def env_field(alias: str, default: Any, description: str, **kw: Any) -> Any:
    """A pydantic field read from the environment variable ``alias`` (and nothing else)."""
    return Field(default=default, validation_alias=AliasChoices(alias), description=description,
                 **kw)


__all__ = ["env_field"]
