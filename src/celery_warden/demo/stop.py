"""Stop requests: SIGINT, SIGTERM and SIGHUP set a flag the demo waits on."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType


class StopFlag:
    """Set by SIGINT, SIGTERM or SIGHUP; a second signal asks for an immediate stop."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.event = threading.Event()
        self.count = 0
        self.reason = ""

    def install(self) -> Callable[[], None]:
        """Install the handlers; returns a function that restores the previous ones."""
        previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        self.reason = self.reason or signal.Signals(signum).name
        self.event.set()

    @property
    def urgent(self) -> bool:
        return self.count > 1
