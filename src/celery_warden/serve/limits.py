"""Request bodies are bounded: nothing the API accepts needs more than :data:`MAX_BODY`.

A pure ASGI middleware: a declared ``Content-Length`` over the limit is answered 413 at once,
and a body sent without one (chunked) is counted as it arrives and refused when it passes the
limit — so a client cannot make the server buffer an arbitrarily large JSON document.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from celery_warden.serve.errors import ApiError, error_response

#: Largest request body accepted (submit's args and kwargs are capped at 64 KB of JSON).
MAX_BODY = 1024 * 1024


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            response = error_response(413, "payload_too_large",
                                      f"request body over {self.limit} bytes")
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise ApiError(413, "payload_too_large",
                                   f"request body over {self.limit} bytes")
            return message

        await self.app(scope, counted, send)


__all__ = ["MAX_BODY", "BodyLimit"]
