"""Keep undecodable messages instead of letting Celery acknowledge them into the void.

Celery's consumer handles a body it cannot decode (bad JSON, a content type outside
``accept_content`` such as pickle) in ``Consumer.on_decode_error``: it logs and acknowledges the
message, and no signal is sent. This consumer bootstep wraps that method so the raw message
(body verbatim, headers, properties) is written to the DLQ first, then Celery's own handling
acknowledges it. The wrap happens when the step is created, before the task consumer captures
``on_decode_error``.

Bootsteps are classes that Celery instantiates itself, so the capture is bound into a subclass
made for one Warden (:func:`decode_error_step`) instead of being looked up at run time.
"""

from __future__ import annotations

from typing import Any, ClassVar

from celery import bootsteps

from celery_warden.dlq.failures import FailureCapture
from celery_warden.isolation import guarded


class DecodeErrorStep(bootsteps.StartStopStep):
    """Consumer bootstep; use :func:`decode_error_step` to bind it to a Warden."""

    label = "Warden decode errors"
    failures: ClassVar[FailureCapture | None] = None

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        failures = self.failures
        if failures is None:
            return
        original = parent.on_decode_error
        capture = guarded(failures.from_message)
        stat = guarded(failures.recorder.stat)

        def on_decode_error(message: Any, exc: Exception) -> Any:
            capture(message, "undecodable", exc,
                    f"{type(exc).__name__}: {exc} (content type {message.content_type!r})")
            stat("undecodable")
            return original(message, exc)

        parent.on_decode_error = on_decode_error


def decode_error_step(failures: FailureCapture) -> type[DecodeErrorStep]:
    """The bootstep class for one Warden's failure capture (add it to ``app.steps``)."""
    return type("DecodeErrorStep", (DecodeErrorStep,), {
        "failures": failures, "__module__": __name__,
    })


__all__ = ["DecodeErrorStep", "decode_error_step"]
