"""Isolation: a failing monitoring handler never reaches the task; its logs are throttled."""

from __future__ import annotations

import logging

import pytest

from celery_warden import isolation
from celery_warden.isolation import guarded, throttle


def critical_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "celery_warden.isolation" and r.levelno == logging.CRITICAL]


def test_exceptions_are_swallowed_and_none_returned(caplog):
    """A raising handler returns None instead of raising, and counts as one failure."""

    @guarded
    def handler(**kwargs):
        raise RuntimeError("monitoring broke")

    before = throttle.failures
    with caplog.at_level(logging.CRITICAL, logger="celery_warden.isolation"):
        assert handler(sender="x") is None
    assert throttle.failures == before + 1
    (record,) = critical_records(caplog)
    assert "handler" in record.getMessage()
    assert "the task is not affected" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError


def test_log_is_throttled_per_handler(caplog):
    """Repeated failures of one handler log CRITICAL once per LOG_EVERY; all are counted."""

    @guarded
    def flaky():
        raise ValueError("again")

    @guarded
    def other():
        raise KeyError("different handler")

    before = throttle.failures
    with caplog.at_level(logging.CRITICAL, logger="celery_warden.isolation"):
        for _ in range(5):
            flaky()
        other()
    assert throttle.failures == before + 6
    messages = [r.getMessage() for r in critical_records(caplog)]
    assert len(messages) == 2, messages
    assert sum("flaky" in m for m in messages) == 1
    assert sum("other" in m for m in messages) == 1


def test_suppressed_count_reported_when_throttle_window_passes(caplog, monkeypatch):
    """After the throttle window, the next log line says how many failures were suppressed."""

    @guarded
    def noisy():
        raise OSError("down")

    with caplog.at_level(logging.CRITICAL, logger="celery_warden.isolation"):
        for _ in range(4):
            noisy()  # 1 logged, 3 suppressed
        monkeypatch.setattr(isolation, "LOG_EVERY", 0.0)
        noisy()
    messages = [r.getMessage() for r in critical_records(caplog)]
    assert len(messages) == 2
    assert "similar failures suppressed" not in messages[0]
    assert "(3 similar failures suppressed)" in messages[1]


def test_return_values_pass_through(caplog):
    """A handler that works returns its value unchanged and logs nothing."""

    @guarded
    def add(a, b=0):
        return a + b

    before = throttle.failures
    with caplog.at_level(logging.DEBUG, logger="celery_warden.isolation"):
        assert add(2, b=3) == 5
        assert add([1], b=[2]) == [1, 2]
    assert throttle.failures == before
    assert critical_records(caplog) == []


def test_wrapper_keeps_name_and_docstring():
    """guarded preserves the handler's name and docstring (functools.wraps)."""

    def on_something():
        """Doc."""

    wrapped = guarded(on_something)
    assert wrapped.__name__ == "on_something"
    assert wrapped.__doc__ == "Doc."
    assert wrapped.__wrapped__ is on_something


def test_base_exceptions_are_not_swallowed():
    """KeyboardInterrupt/SystemExit still propagate: shutdown must not be swallowed."""

    @guarded
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
