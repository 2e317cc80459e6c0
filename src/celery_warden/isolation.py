"""Keep monitoring faults away from the work being monitored.

Every Celery signal handler Warden connects is wrapped by :func:`guarded`: an exception inside
monitoring is logged at most once per ``LOG_EVERY`` seconds per handler (with a count of what was
suppressed) and swallowed, so it never reaches the task, the worker or the publisher. Dramatiq's
``Broker.emit_after`` is the model.

Fork safety: a prefork pool child is forked from the worker's main process while its other
threads (heartbeat, flusher, pool supervisor, a user's publisher threads) run; if one of them
held the throttle's lock at that moment, the child would inherit it held forever and deadlock
the first time a handler fails. ``os.register_at_fork`` gives the child a fresh lock (and its
own, empty suppression counts).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

logger = logging.getLogger("celery_warden.isolation")

LOG_EVERY = 60.0

F = TypeVar("F", bound=Callable[..., Any])


class _Throttle:
    """Per-handler log throttle (thread-safe; cheap when nothing fails)."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        # Also in a forked child (see the module docstring): the parent's lock may be held.
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self.failures = 0

    def report(self, name: str) -> None:
        now = time.monotonic()
        with self._lock:
            self.failures += 1
            last = self._last.get(name)
            if last is not None and now - last < LOG_EVERY:
                self._suppressed[name] = self._suppressed.get(name, 0) + 1
                return
            self._last[name] = now
            suppressed = self._suppressed.pop(name, 0)
        logger.critical(
            "warden: monitoring handler %s failed; the task is not affected%s",
            name,
            f" ({suppressed} similar failures suppressed)" if suppressed else "",
            exc_info=True,
        )


throttle = _Throttle()
os.register_at_fork(after_in_child=throttle._reset)


def guarded(fn: F) -> F:
    """Wrap a signal handler so that nothing it raises escapes."""
    name = getattr(fn, "__qualname__", repr(fn))

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception:
            throttle.report(name)
            return None

    return wrapper  # type: ignore[return-value]


__all__ = ["guarded", "throttle"]
