"""Models shared by several resources."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Open(BaseModel):
    """Base of response models: documented fields, and tolerant of a field a newer reader adds
    (extra fields pass through instead of failing the response)."""

    model_config = ConfigDict(extra="allow")


class Done(Open):
    ok: bool = True
    detail: str | None = None


Json = dict[str, Any]

__all__ = ["Done", "Json", "Open"]
