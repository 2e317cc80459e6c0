"""Base task classes without a worker: option resolution, per-call options on the wire,
retry classification, routing and time limits.

Per-call options reach a task in the ``warden_options`` header of its request; a request
context is pushed with ``task.push_request(...)`` the way the worker does. Publishing goes to
the test's own Redis broker keys (nobody consumes them; the ``settings`` fixture removes them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from kombu.exceptions import OperationalError

from celery_warden import celery_config
from celery_warden.config import WardenRouter, queue_name
from celery_warden.settings import WardenSettings
from celery_warden.tasks.base import (
    CALL_OPTIONS,
    CRITICAL_MAX_RETRIES,
    CRITICAL_PRIORITY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_SOFT_TIME_LIMIT,
    DEFAULT_TIME_LIMIT,
    HISTORY_HEADER,
    LONG_SOFT_TIME_LIMIT,
    LONG_TIME_LIMIT,
    OPTIONS_HEADER,
    TRANSIENT_ERRORS,
    BaseTask,
    CriticalTask,
    LongRunningTask,
    RetryableTask,
)
from tests.unit.test_dlq import broker_messages


class Declined(ConnectionError):
    """A transient-looking error a task declares it never wants retried."""


class Tasks:
    """The tasks one test app registers (one of each base class, some with per-task options)."""

    def __init__(self, app: Celery) -> None:
        @app.task(base=BaseTask, name="t.base", shared=False)
        def base(x: int) -> int:
            return x

        @app.task(base=BaseTask, name="t.tuned", shared=False, max_retries=8, backoff_base=0.25,
                  backoff_factor=3.0, backoff_cap=30.0, backoff_jitter="none",
                  dead_letter=False)
        def tuned(x: int) -> int:
            return x

        @app.task(base=RetryableTask, name="t.retryable", shared=False)
        def retryable() -> None:
            return None

        @app.task(base=RetryableTask, name="t.picky", shared=False, retry_for=(ConnectionError,),
                  dont_retry_for=(Declined,))
        def picky() -> None:
            return None

        @app.task(base=CriticalTask, name="t.critical", shared=False)
        def critical() -> str:
            return "ok"

        @app.task(base=LongRunningTask, name="t.long", shared=False)
        def long() -> None:
            return None

        @app.task(base=LongRunningTask, name="t.long_custom", shared=False,
                  soft_time_limit=7200, time_limit=7300)
        def long_custom() -> None:
            return None

        self.base: Any = base
        self.tuned: Any = tuned
        self.retryable: Any = retryable
        self.picky: Any = picky
        self.critical: Any = critical
        self.long: Any = long
        self.long_custom: Any = long_custom


@pytest.fixture
def app(settings: WardenSettings) -> Iterator[Celery]:
    """A Celery app on the test's Redis broker keys and queue names (no Warden installed)."""
    app = Celery(f"tasks-{settings.key_prefix}", set_as_current=False)
    app.conf.update(celery_config(settings))
    yield app
    app.close()


@pytest.fixture
def tasks(app: Celery) -> Tasks:
    return Tasks(app)


class pushed:
    """``with pushed(task, **request):`` runs the block inside a pushed request context."""

    def __init__(self, task: Any, **request: Any) -> None:
        self.task = task
        self.request = request

    def __enter__(self) -> Any:
        self.task.push_request(**self.request)
        return self.task

    def __exit__(self, *exc: object) -> None:
        self.task.pop_request()


# -- option resolution ------------------------------------------------------------------------
def test_defaults_come_from_the_documented_module_constants(tasks):
    """With no per-task or per-call option, a BaseTask uses the module defaults."""
    t = tasks.base
    with pushed(t, id="t1"):
        assert t.option("max_retries") == DEFAULT_MAX_RETRIES == 3
        assert t.option("dead_letter") is True
        policy = t.backoff_policy()
    assert (policy.base, policy.factor, policy.cap, policy.jitter) == (1.0, 2.0, 300.0, "full")
    assert t.acks_late is True
    assert t.reject_on_worker_lost is True
    assert (t.soft_time_limit, t.time_limit) == (DEFAULT_SOFT_TIME_LIMIT, DEFAULT_TIME_LIMIT)


def test_per_task_options_override_the_defaults(tasks):
    """Decorator options (per task) win over the module defaults."""
    t = tasks.tuned
    with pushed(t, id="t1"):
        assert t.option("max_retries") == 8
        assert t.option("dead_letter") is False
        policy = t.backoff_policy()
    assert (policy.base, policy.factor, policy.cap, policy.jitter) == (0.25, 3.0, 30.0, "none")


def test_per_call_options_from_the_header_override_per_task_options(tasks):
    """Options in the request's ``warden_options`` header win over the task's own; options not
    given per call still resolve per task."""
    t = tasks.tuned
    opts = {"max_retries": 2, "backoff_base": 0.5, "dead_letter": True}
    with pushed(t, id="t1", headers={OPTIONS_HEADER: opts}):
        assert t.call_options() == opts
        assert t.option("max_retries") == 2
        assert t.option("dead_letter") is True
        assert t.option("backoff_factor") == 3.0  # per task: not set per call
        policy = t.backoff_policy()
    assert (policy.base, policy.factor, policy.cap, policy.jitter) == (0.5, 3.0, 30.0, "none")


def test_per_call_options_as_a_request_attribute_are_found(tasks):
    """A worker merges custom headers into the request as attributes: that form works too."""
    t = tasks.base
    with pushed(t, id="t1", warden_options={"max_retries": 0, "backoff_jitter": "equal"}):
        assert t.option("max_retries") == 0
        assert t.backoff_policy().jitter == "equal"


def test_per_call_options_do_not_leak_into_the_next_request(tasks):
    """Once the request that carried options is popped, the task resolves per task again."""
    t = tasks.tuned
    with pushed(t, id="t1", headers={OPTIONS_HEADER: {"max_retries": 1}}):
        assert t.option("max_retries") == 1
    with pushed(t, id="t2"):
        assert t.call_options() == {}
        assert t.option("max_retries") == 8


def test_a_malformed_options_header_is_ignored(tasks):
    """A ``warden_options`` header that is not a dict (another publisher's junk) is ignored."""
    t = tasks.tuned
    with pushed(t, id="t1", headers={OPTIONS_HEADER: ["max_retries", 1]}):
        assert t.call_options() == {}
        assert t.option("max_retries") == 8


def test_retry_uses_the_per_call_backoff_for_its_countdown(tasks):
    """``self.retry()`` without a countdown waits ``backoff.delay(retries)`` resolved per call:
    jitter none, base 0.5, factor 3 at retry 2 is exactly 4.5 s; the retry history records it."""
    t = tasks.tuned
    opts = {"backoff_base": 0.5, "backoff_jitter": "none"}
    with pushed(t, id="t1", retries=2, called_directly=False, is_eager=True, args=[1],
                kwargs={}, headers={OPTIONS_HEADER: opts}):
        outcome = t.retry(exc=ConnectionError("refused"), throw=False)
    assert outcome.when == 0.5 * 3.0**2
    history = outcome.sig.options["headers"][HISTORY_HEADER]
    assert [(h["attempt"], h["exc_type"], h["delay"]) for h in history] == [
        (2, "ConnectionError", 4.5)]
    assert outcome.sig.options["headers"][OPTIONS_HEADER] == opts


def test_retry_respects_the_per_call_max_retries(tasks):
    """A per-call ``max_retries`` of 1 makes the second retry raise the task's exception."""
    t = tasks.tuned
    with (pushed(t, id="t1", retries=1, called_directly=False, is_eager=True, args=[1],
                 kwargs={}, headers={OPTIONS_HEADER: {"max_retries": 1}}),
          pytest.raises(ConnectionError, match="still down")):
        t.retry(exc=ConnectionError("still down"), throw=False)


# -- per-call options on apply_async ----------------------------------------------------------
@pytest.mark.parametrize("bad", [{"max_retry": 5}, {"backoff_base": 1, "queue": "x"},
                                 {"priority": 9}])
def test_apply_async_rejects_unknown_warden_options(tasks, bad):
    """``apply_async(warden={...})`` with an unknown option name raises ValueError naming it
    (a typo must not silently fall back to defaults)."""
    unknown = sorted(set(bad) - CALL_OPTIONS)
    with pytest.raises(ValueError, match="unknown warden option") as err:
        tasks.base.apply_async((1,), warden=bad)
    assert str(unknown) in str(err.value)


def test_apply_async_rejection_publishes_nothing(tasks, settings, redis_client):
    """A rejected call leaves nothing on the broker."""
    with pytest.raises(ValueError):
        tasks.base.apply_async((1,), warden={"nope": 1})
    assert broker_messages(redis_client, settings) == []


def test_apply_async_carries_known_options_in_the_header(tasks, settings, redis_client):
    """The retry/DLQ options are accepted and published in the ``warden_options`` header, next
    to the caller's own headers."""
    opts = {"max_retries": 5, "backoff_base": 0.5, "backoff_factor": 3.0, "backoff_cap": 60.0,
            "backoff_jitter": "equal", "dead_letter": False}
    assert set(opts) <= CALL_OPTIONS
    result = tasks.base.apply_async((7,), warden=opts, headers={"x-custom": "keep"})
    [msg] = broker_messages(redis_client, settings)
    assert msg.headers["id"] == result.id
    assert msg.headers[OPTIONS_HEADER] == opts
    assert msg.headers["x-custom"] == "keep"
    assert msg.args == [7]


def test_apply_async_without_warden_options_adds_no_header(tasks, settings, redis_client):
    """Without ``warden=`` (or with an empty dict) the message has no options header."""
    tasks.base.apply_async((1,))
    tasks.base.apply_async((2,), warden={})
    msgs = broker_messages(redis_client, settings)
    assert [m.args for m in msgs] == [[1], [2]]
    assert all(OPTIONS_HEADER not in m.headers for m in msgs)


# -- retry classification ---------------------------------------------------------------------
def test_retryable_task_retries_transient_errors(tasks):
    """RetryableTask's ``retry_for`` covers connection errors and timeouts (builtin, socket,
    redis and kombu flavours, subclasses included)."""
    t = tasks.retryable
    assert ConnectionError in TRANSIENT_ERRORS
    assert TimeoutError in TRANSIENT_ERRORS
    assert set(TRANSIENT_ERRORS) <= set(t.retry_for)
    for exc in (ConnectionError("x"), ConnectionRefusedError("x"), ConnectionResetError("x"),
                TimeoutError("x"), redis.ConnectionError("x"),
                redis.TimeoutError("x"), OperationalError("x")):
        assert t._should_retry(exc), exc


def test_retryable_task_does_not_retry_other_errors(tasks):
    """Programming errors are not transient: no automatic retry."""
    t = tasks.retryable
    for exc in (ValueError("x"), KeyError("x"), RuntimeError("x"), ZeroDivisionError()):
        assert not t._should_retry(exc), exc


def test_base_task_retries_nothing_automatically(tasks):
    """BaseTask has an empty ``retry_for``: only an explicit ``self.retry()`` retries."""
    assert tasks.base.retry_for == ()
    assert not tasks.base._should_retry(ConnectionError("x"))


def test_dont_retry_for_wins_over_retry_for(tasks):
    """An exception matching both ``retry_for`` and ``dont_retry_for`` is not retried."""
    t = tasks.picky
    assert t._should_retry(ConnectionRefusedError("x"))
    assert not t._should_retry(Declined("x"))
    assert not t._should_retry(TimeoutError("x"))  # narrowed retry_for


# -- routing, priority, limits ----------------------------------------------------------------
def test_critical_task_class_defaults():
    """CriticalTask: logical queue high_priority, priority 9, 10 retries, still retryable."""
    assert CriticalTask.warden_queue == "high_priority"
    assert CriticalTask.priority == CRITICAL_PRIORITY == 9
    assert CriticalTask.max_retries == CRITICAL_MAX_RETRIES == 10
    assert issubclass(CriticalTask, RetryableTask)


def test_router_maps_the_logical_queue_and_lets_an_explicit_queue_win(tasks, settings):
    """WardenRouter sends a task declaring ``warden_queue`` to the real (prefixed) queue, and
    leaves tasks without one, or calls naming a queue explicitly, alone."""
    router = WardenRouter(settings)
    high = queue_name(settings, "high_priority")
    assert high == f"{settings.queue_prefix}high_priority"
    assert router("t.critical", (), {}, {}, task=tasks.critical) == {"queue": high}
    assert router("t.base", (), {}, {}, task=tasks.base) is None
    assert router("t.critical", (), {}, {"queue": "elsewhere"}, task=tasks.critical) is None


def test_critical_task_is_published_to_high_priority(tasks, settings, redis_client):
    """Published through the configured router, a CriticalTask lands in high_priority with its
    priority 9; a BaseTask lands in default."""
    tasks.critical.apply_async()
    tasks.base.apply_async((1,))
    [high] = broker_messages(redis_client, settings, "high_priority")
    [default] = broker_messages(redis_client, settings, "default")
    assert high.headers["task"] == "t.critical"
    assert high.properties["delivery_info"]["routing_key"] == queue_name(settings,
                                                                         "high_priority")
    # No Warden installed here, so no normalisation: the task's priority is the property.
    assert high.headers.get("warden_priority", high.properties["priority"]) == CRITICAL_PRIORITY
    assert default.headers["task"] == "t.base"


def test_critical_task_explicit_queue_overrides_the_route(tasks, settings, redis_client):
    """``apply_async(queue=...)`` on a CriticalTask publishes where the caller said."""
    low = queue_name(settings, "low_priority")
    tasks.critical.apply_async(queue=low)
    assert broker_messages(redis_client, settings, "high_priority") == []
    [msg] = broker_messages(redis_client, settings, "low_priority")
    assert msg.headers["task"] == "t.critical"


def test_long_running_task_limits(tasks):
    """LongRunningTask has a one-hour soft limit and a hard limit above it; per-task options
    override them."""
    assert (tasks.long.soft_time_limit, tasks.long.time_limit) == (
        LONG_SOFT_TIME_LIMIT, LONG_TIME_LIMIT)
    assert LONG_SOFT_TIME_LIMIT == 3600
    assert LONG_TIME_LIMIT > LONG_SOFT_TIME_LIMIT
    assert (tasks.long_custom.soft_time_limit, tasks.long_custom.time_limit) == (7200, 7300)
    assert tasks.long.acks_late is True


def test_report_progress_without_warden_is_a_no_op(tasks):
    """Progress reporting outside a Warden-wired app does nothing and never raises."""
    with pushed(tasks.long, id="t1"):
        assert tasks.long.report_progress(1, 2, "half") is None


def test_retry_history_masks_secrets_in_the_exception_text(tasks):
    """The retry history is failure text Warden writes itself: its ``exc_msg`` is masked
    where it is created (it is shown by get_task_status, the DLQ and the CLI), whatever the
    key/value shape; the task's own arguments in the retried message stay intact."""
    t = tasks.tuned
    exc = ConnectionError("password=hunter2 token=abc " + "x" * 600)
    with pushed(t, id="t1", retries=0, called_directly=False, is_eager=True,
                args=["password=hunter2"], kwargs={"token": "abc"}, headers={}):
        outcome = t.retry(exc=exc, throw=False)
    (item,) = outcome.sig.options["headers"][HISTORY_HEADER]
    assert item["exc_msg"].startswith("password=[redacted] token=[redacted] xxx")
    assert len(item["exc_msg"]) == 500
    assert "hunter2" not in json.dumps(item) and "abc" not in json.dumps(item)
    assert outcome.sig.args == ("password=hunter2",) or outcome.sig.args == ["password=hunter2"]
    assert outcome.sig.kwargs == {"token": "abc"}
