"""How the demo ends early: :class:`DemoFailure` carries the message and the exit code."""

from __future__ import annotations


class DemoFailure(Exception):
    """Ends the demo with a message and an exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code
