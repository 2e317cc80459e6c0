"""Answers of hot routes without pydantic on the response path, the same JSON as the model's.

FastAPI validates and serializes a route's return value through its ``response_model``; for the
task lookup that cost more than the Redis read (~0.3 ms in-process under 20 concurrent
requests, a third of the route). A route that already builds a plain JSON-ready dict — the
readers' answers are — can answer :func:`model_json` instead: the model stays the route's
``response_model``, so the OpenAPI schema is unchanged, and the body is the dict with the
defaults of the model's absent optional fields filled in, which is what the model's own
serialization would have written (``tests/unit/test_fast_response.py`` compares the two on real
records; schemathesis validates live answers against the schema).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from pydantic_core import PydanticUndefined, to_json


@cache
def model_defaults(model: type[BaseModel]) -> dict[str, Any]:
    """The top-level optional fields of ``model`` with their JSON defaults (required fields and
    those with a default factory are left out: a body must carry those itself)."""
    return {name: field.default for name, field in model.model_fields.items()
            if field.default is not PydanticUndefined and field.default_factory is None}


def model_body(model: type[BaseModel], body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as ``model`` would serialize it (its absent defaults filled in)."""
    return {**model_defaults(model), **body}


def model_json(model: type[BaseModel], body: dict[str, Any], status_code: int = 200,
               ) -> JSONResponse:
    """A JSON response of :func:`model_body` (not validated again: the caller's dict is)."""
    return JSONResponse(model_body(model, body), status_code=status_code)


def model_bytes(model: type[BaseModel], body: dict[str, Any], status_code: int = 200,
                ) -> Response:
    """:func:`model_body` written by pydantic-core's JSON writer, the one FastAPI itself uses
    for a ``response_model`` (``dump_json``): the same bytes as the model path (infinities
    and NaN as ``null``, pydantic's default), without validating the body again."""
    return Response(to_json(model_body(model, body), inf_nan_mode="null"),
                    status_code=status_code, media_type="application/json")


__all__ = ["model_body", "model_bytes", "model_defaults", "model_json"]
