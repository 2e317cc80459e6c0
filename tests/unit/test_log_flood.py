"""Flood control: identical warnings/errors are capped per window and summarised."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from celery_warden.logs.flood import FloodFilter, normalise


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def summaries(self) -> list[logging.LogRecord]:
        return [r for r in self.records if hasattr(r, "flood_suppressed")]

    def plain(self) -> list[logging.LogRecord]:
        return [r for r in self.records if not hasattr(r, "flood_suppressed")]


@pytest.fixture
def setup() -> Iterator[tuple[logging.Logger, FloodFilter, Capture, Clock]]:
    clock = Clock()
    flood = FloodFilter(limit=5, window=60, clock=clock)
    handler = Capture()
    handler.addFilter(flood)
    log = logging.getLogger(f"test.flood.{id(flood)}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    yield log, flood, handler, clock
    flood.flush()
    log.removeHandler(handler)


def fail(log: logging.Logger, task_id: str) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        log.error("Task t[%s] raised unexpected: ValueError('boom')", task_id, exc_info=True)


def test_a_thousand_identical_errors_write_limit_lines_and_one_summary(setup):
    """1,000 identical errors (different task ids) → 5 lines, then one summary of 995."""
    log, flood, handler, _ = setup
    for i in range(1000):
        fail(log, f"2f1c7a0e-0000-4000-8000-{i:012d}")
    assert len(handler.plain()) == 5
    assert flood.suppressed_total == 995
    flood.flush()
    (summary,) = handler.summaries()
    assert summary.flood_suppressed == 995  # type: ignore[attr-defined]
    assert summary.levelno == logging.ERROR and summary.name == log.name
    assert summary.getMessage().startswith("995 more like this in the last 0 s: Task t[")


def test_summary_is_written_when_the_window_ends_and_a_new_window_starts(setup):
    """After the window, the next identical error first closes the old window (summary),
    then passes again under a fresh limit."""
    log, _, handler, clock = setup
    for i in range(8):
        log.error("disk full on volume %d", i)
    clock.now += 61
    log.error("disk full on volume 99")
    messages = [r.getMessage() for r in handler.records]
    assert messages[-2] == "3 more like this in the last 60 s: disk full on volume 0"
    assert messages[-1] == "disk full on volume 99"


def test_different_errors_and_levels_are_counted_apart(setup):
    """Different messages, exception types or levels have their own windows."""
    log, flood, handler, _ = setup
    for _ in range(10):
        log.error("a failed")
        log.error("b failed")
        log.warning("a failed")
    assert len(handler.plain()) == 15
    assert flood.suppressed_total == 15


def test_info_lines_are_never_held_back_and_zero_disables(setup):
    """Below WARNING nothing is throttled; limit 0 turns flood control off."""
    log, flood, handler, _ = setup
    for _ in range(50):
        log.info("task finished")
    assert len(handler.records) == 50
    flood.limit = 0
    for _ in range(50):
        log.error("same")
    assert len(handler.records) == 100


def test_normalise_replaces_ids_and_numbers():
    """Task ids, hex digests and numbers do not make otherwise identical messages differ."""
    a = normalise("Task x[2f1c7a0e-1111-4000-8000-000000000001] failed after 3.5s: 0xdeadbeef")
    b = normalise("Task x[9a9c7a0e-2222-4000-8000-000000000002] failed after 12s: 0xfeed")
    assert a == b


def test_the_timer_writes_the_summary_without_further_errors():
    """A burst that stops is still summarised when its window ends (timer thread)."""
    import time

    flood = FloodFilter(limit=1, window=0.2)
    handler = Capture()
    handler.addFilter(flood)
    log = logging.getLogger("test.flood.timer")
    log.propagate = False
    log.addHandler(handler)
    try:
        for _ in range(4):
            log.error("same")
        deadline = time.monotonic() + 5
        while not handler.summaries() and time.monotonic() < deadline:
            time.sleep(0.05)
        (summary,) = handler.summaries()
        assert summary.flood_suppressed == 3  # type: ignore[attr-defined]
    finally:
        log.removeHandler(handler)
