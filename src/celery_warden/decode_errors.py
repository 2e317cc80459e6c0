"""Keep undecodable messages instead of letting Celery acknowledge them into the void.

Celery's consumer handles a body it cannot decode (bad JSON, a content type outside
``accept_content`` such as pickle) in ``Consumer.on_decode_error``: it logs and acknowledges the
message, and no signal is sent. This consumer bootstep wraps that method so the raw message
(body verbatim, headers, properties) is written to the DLQ first, then Celery's own handling
acknowledges it. The wrap happens when the step is created, before the task consumer captures
``on_decode_error``.
"""

from __future__ import annotations

from typing import Any

from celery import bootsteps

from celery_warden.isolation import guarded


class DecodeErrorStep(bootsteps.StartStopStep):
    """Consumer bootstep installed by :class:`~celery_warden.warden.Warden`."""

    label = "Warden decode errors"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        from celery_warden.warden import Warden

        warden = Warden.installed_on(parent.app)
        if warden is None:
            return
        original = parent.on_decode_error
        capture = guarded(warden.handlers.failures.from_message)

        def on_decode_error(message: Any, exc: Exception) -> Any:
            capture(message, "undecodable", exc,
                    f"{type(exc).__name__}: {exc} (content type {message.content_type!r})")
            warden.recorder.stat("undecodable")
            return original(message, exc)

        parent.on_decode_error = on_decode_error


__all__ = ["DecodeErrorStep"]
