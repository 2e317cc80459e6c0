"""The API's one error shape, ``{"error": {"code": "<snake_case>", "message": "<text>"}}``.

Why one shape for every failure: a script, the dashboard and a load balancer read the same
``code`` whether the request was malformed (422), unauthenticated (401), refused (403), about
something unknown (404) or the store was down (503). No handler ever puts a traceback in a
response: an unexpected exception is logged here and answered with a fixed message.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from celery_warden.errors import WindowError
from celery_warden.redaction import Redactor

logger = logging.getLogger("celery_warden.serve")
_REDACTOR = Redactor()
#: Longest error message sent to a client (a 10 KB exception text is cut, never echoed whole).
MAX_MESSAGE = 500

_STATUS_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict",
    413: "payload_too_large", 415: "unsupported_media_type", 422: "invalid_request",
    429: "too_many_requests", 500: "internal_error", 503: "unavailable",
}


class ApiError(Exception):
    """Raise from a route or a dependency to answer ``status`` with ``code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def not_found(what: str, ident: str) -> ApiError:
    """404 for an unknown id (the id is echoed masked and cut)."""
    return ApiError(404, "not_found", f"no {what} {clip(ident, 200)!r}")


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error response."""

    error: ErrorDetail


def _doc(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


#: Error responses every router documents (so the OpenAPI schema describes every answer).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _doc("No or invalid credentials."),
    403: _doc("The credentials' scope is too weak, or a cross-site request with a cookie."),
    404: _doc("Unknown id."),
    422: _doc("Invalid parameters."),
    503: _doc("The store or the broker does not answer."),
}


def clip(text: str, limit: int = MAX_MESSAGE) -> str:
    """Masked and cut to ``limit`` characters."""
    text = _REDACTOR.redact_text(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": clip(message)}}
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "request"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """JSON errors for every failure: ours, Starlette's (404 route, 405), validation, the
    store or broker down (503), and anything else (500 with a fixed message, logged)."""

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        detail = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", _validation_message(exc))

    @app.exception_handler(WindowError)
    async def _window(_: Request, exc: WindowError) -> JSONResponse:
        return error_response(422, "invalid_window", str(exc))

    @app.exception_handler(redis.RedisError)
    async def _store(_: Request, exc: redis.RedisError) -> JSONResponse:
        return error_response(503, "store_unavailable",
                              f"the store does not answer: {type(exc).__name__}")

    @app.exception_handler(OperationalError)
    async def _broker(_: Request, exc: OperationalError) -> JSONResponse:
        return error_response(503, "broker_unavailable",
                              f"the broker does not answer: {type(exc).__name__}")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled error in %s %s", request.method, request.url.path,
                     exc_info=exc)
        return error_response(500, "internal_error",
                              "internal error (logged by the server)")


__all__ = ["ERROR_RESPONSES", "ApiError", "ErrorBody", "ErrorDetail", "clip",
           "error_response", "install_error_handlers", "not_found"]
