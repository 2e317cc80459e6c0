"""Security headers on every response (a pure ASGI middleware, so streamed responses pass).

* ``Content-Security-Policy``: scripts, styles, images and connections from this origin only,
  no inline script anywhere, no plugins, no framing, forms post back here only;
* ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``,
  ``X-Frame-Options: DENY`` (for browsers without ``frame-ancestors``);
* ``Cache-Control: no-store`` on everything under ``/api/`` (answers carry fleet data), unless
  the route set its own (vendored static files may be cached).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")
_ALWAYS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
_OURS = frozenset(h for h, _ in _ALWAYS)
_NO_STORE = (b"cache-control", b"no-store")


class SecurityHeaders:
    """Adds the headers above to every HTTP response of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = str(scope.get("path", "")).startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in _OURS]
                if api and not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append(_NO_STORE)
                headers.extend(_ALWAYS)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


__all__ = ["CSP", "SecurityHeaders"]
