"""Flood control: a burst of identical warnings or errors does not flood the log.

:class:`FloodFilter` sits on Warden's log handler. Records are grouped by (logger, level,
exception type, message with ids and numbers normalised); within a window that starts at a
group's first record, the first ``limit`` records pass and the rest are counted, not written.
When the window ends (a timer, or the group's next record, or process shutdown, whichever comes
first) one summary line is written at the same level and logger:
``"<N> more like this in the last <S> s: <message>"`` with ``flood_suppressed=N`` and
``flood_window=S`` fields. Only log lines are affected: every failure is still recorded in the
store and counted in its error group. Records below WARNING are never held back.

Per process: each pool child has its own windows, so a fleet writes at most
``limit x processes`` lines per group and window.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable

#: Defaults of ``WARDEN_LOG_FLOOD_LIMIT`` / ``WARDEN_LOG_FLOOD_WINDOW``.
DEFAULT_LIMIT = 10
DEFAULT_WINDOW = 60.0
#: Records below this level always pass.
MIN_LEVEL = logging.WARNING
#: Groups tracked at once per process; past this the oldest window is closed early.
MAX_GROUPS = 1_000

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b|\b[0-9a-fA-F]{12,}\b")
_NUM = re.compile(r"\d+(?:\.\d+)?")

Key = tuple[str, int, str, str]


def normalise(message: str) -> str:
    """``message`` with UUIDs, long hex strings and numbers replaced (ids differ per task)."""
    return _NUM.sub("<n>", _HEX.sub("<hex>", _UUID.sub("<id>", message[:500])))


class _Window:
    __slots__ = ("level", "logger", "sample", "shown", "start", "suppressed")

    def __init__(self, start: float, logger: str, level: int, sample: str) -> None:
        self.start, self.logger, self.level, self.sample = start, logger, level, sample
        self.shown = 0
        self.suppressed = 0


class FloodFilter(logging.Filter):
    """Let through at most ``limit`` identical records per ``window`` seconds, then summarise.

    ``limit=0`` disables flood control.
    """

    def __init__(self, limit: int = DEFAULT_LIMIT, window: float = DEFAULT_WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.limit = limit
        self.window = window
        self._clock = clock
        self._reset()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _call(ref))

    def _reset(self) -> None:
        # Also after fork: the parent's lock may have been held, its timer thread is gone, and
        # its suppressed counts are the parent's to report.
        self._lock = threading.Lock()
        self._windows: dict[Key, _Window] = {}
        self._timer: threading.Timer | None = None
        self.suppressed_total = 0

    # -- the filter ------------------------------------------------------------------------
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < MIN_LEVEL or self.limit <= 0 or hasattr(record, "flood_suppressed"):
            return True
        text = _text(record)
        exc = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        key = (record.name, record.levelno, exc, normalise(text))
        now = self._clock()
        closed: list[_Window] = []
        with self._lock:
            w = self._windows.get(key)
            if w is not None and now - w.start >= self.window:
                closed.append(self._windows.pop(key))
                w = None
            if w is None:
                if len(self._windows) >= MAX_GROUPS:
                    closed.append(self._windows.pop(next(iter(self._windows))))
                w = self._windows[key] = _Window(now, record.name, record.levelno, text[:300])
            if w.shown < self.limit:
                w.shown += 1
                allow = True
            else:
                w.suppressed += 1
                self.suppressed_total += 1
                allow = False
                self._arm(w.start + self.window - now)
        self._summarise(closed, now)
        return allow

    # -- summaries -------------------------------------------------------------------------
    def flush_due(self) -> None:
        """Summarise every window that has ended (run by the timer)."""
        now = self._clock()
        with self._lock:
            self._timer = None
            due = [k for k, w in self._windows.items() if now - w.start >= self.window]
            closed = [self._windows.pop(k) for k in due]
            pending = [w.start + self.window - now for w in self._windows.values()
                       if w.suppressed]
            if pending:
                self._arm(min(pending))
        self._summarise(closed, now)

    def flush(self) -> None:
        """Summarise every open window now (process shutdown)."""
        now = self._clock()
        with self._lock:
            closed = list(self._windows.values())
            self._windows.clear()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self._summarise(closed, now)

    def _arm(self, delay: float) -> None:
        """Start the summary timer unless one is pending (called with the lock held)."""
        if self._timer is not None:
            return
        timer = threading.Timer(max(delay, 0.0) + 0.01, self.flush_due)
        timer.daemon = True
        timer.name = "warden-log-flood"
        self._timer = timer
        timer.start()

    def _summarise(self, windows: list[_Window], now: float) -> None:
        for w in windows:
            if not w.suppressed:
                continue
            seconds = round(min(max(now - w.start, 0.0), self.window))
            logging.getLogger(w.logger).log(
                w.level, "%d more like this in the last %d s: %s", w.suppressed, seconds,
                w.sample, extra={"flood_suppressed": w.suppressed, "flood_window": seconds},
            )


def _text(record: logging.LogRecord) -> str:
    msg = record.msg
    if isinstance(msg, dict):  # a structlog event on its way to the formatter
        return str(msg.get("event", ""))
    try:
        return record.getMessage()
    except Exception:  # a bad format string still gets a key
        return str(msg)


def _call(ref: weakref.ref[FloodFilter]) -> None:
    obj = ref()
    if obj is not None:
        obj._reset()


__all__ = ["DEFAULT_LIMIT", "DEFAULT_WINDOW", "FloodFilter", "normalise"]
