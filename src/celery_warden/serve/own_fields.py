"""Warden's own number fields in API answers, and redaction keys that would mask them.

Why: ``WARDEN_REDACT_KEYS`` masks values by the *words* of their key, at any depth of an answer,
so a task argument ``wait`` can be hidden wherever it appears. The same word is part of
Warden's own fields — ``wait`` masks ``queue_wait`` and ``avg_queue_wait``, ``count`` every
count — and a number replaced by ``"[redacted]"`` is no longer what the answer's schema says:
FastAPI refuses its own answer (a 500 on every performance page) and the fast paths would send
answers that violate the published schema. Masking Warden's own measurements protects no
secret and hides what an operator came for, so ``warden serve`` refuses such a key at start
with the fields it would hide, and a narrower key to use instead (``wait_token`` matches a
task argument ``wait_token`` and none of Warden's fields).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from celery_warden.redaction import Redactor, parse_keys
from celery_warden.serve.binding import ServeRefused
from celery_warden.settings import WardenSettings

_SCALARS = {"integer", "number", "boolean"}


def _is_number(prop: dict[str, Any]) -> bool:
    """Whether an OpenAPI property is a number, integer or boolean (optionally nullable)."""
    if prop.get("type") in _SCALARS:
        return True
    options = prop.get("anyOf") or prop.get("oneOf") or []
    kinds = {o.get("type") for o in options if isinstance(o, dict)}
    return bool(kinds) and kinds <= _SCALARS | {"null"} and bool(kinds & _SCALARS)


def number_fields(openapi: dict[str, Any]) -> set[str]:
    """Names of every number, integer or boolean property of the answers' schemas."""
    out: set[str] = set()
    schemas = openapi.get("components", {}).get("schemas", {})
    for schema in schemas.values():
        for name, prop in (schema.get("properties") or {}).items():
            if isinstance(prop, dict) and _is_number(prop):
                out.add(name)
    return out


def masked_numbers(redactor: Redactor, app: FastAPI) -> list[str]:
    """Warden's own number fields the redactor would mask, sorted."""
    return sorted(f for f in number_fields(app.openapi()) if redactor.is_secret(f))


def check_redaction(settings: WardenSettings, app: FastAPI) -> None:
    """Refuse (:class:`ServeRefused`) a ``WARDEN_REDACT_KEYS`` that masks Warden's numbers.
    Only extra keys are checked (building the schema costs ~0.5 s; the default keys match no
    number field, ``tests/unit/test_own_fields.py`` pins that)."""
    if not parse_keys(settings.redact_keys):
        return
    hidden = masked_numbers(Redactor(settings.redact_keys), app)
    if hidden:
        shown = ", ".join(hidden[:8]) + (f" and {len(hidden) - 8} more" if len(hidden) > 8
                                         else "")
        raise ServeRefused(
            f"WARDEN_REDACT_KEYS={settings.redact_keys!r} would mask Warden's own numbers in "
            f"API answers ({shown}), which are measurements, not secrets, and must stay "
            "numbers; name the secret more narrowly (a key matches by whole words: "
            "'wait_token' masks a task argument wait_token and none of these)")


__all__ = ["check_redaction", "masked_numbers", "number_fields"]
