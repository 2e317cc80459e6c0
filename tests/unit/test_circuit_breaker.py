"""Circuit breaker state machine on a real Redis: windows, thresholds, half-open, forcing."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from celery_warden.errors import CircuitOpenError
from celery_warden.fleet import breaker as cb
from celery_warden.fleet.breaker import BreakerConfig, CircuitBreaker
from celery_warden.fleet.breaker_state import count_trips
from celery_warden.keys import Keys
from celery_warden.read.monitor import CeleryMonitor
from tests.conftest import make_settings


class Boom(Exception):
    pass


class NotMine(Exception):
    pass


@pytest.fixture(autouse=True)
def _no_outage():
    cb._outage.reset()
    yield
    cb._outage.reset()


def make(settings, **config) -> CircuitBreaker:
    base = {"minimum_calls": 4, "window_size": 10, "recovery_timeout": 0.3,
            "half_open_calls": 2}
    base.update(config)
    return CircuitBreaker(f"b-{uuid.uuid4().hex[:8]}", settings=settings, **base)


def outcome(breaker: CircuitBreaker, fail: bool, exc: BaseException | None = None) -> None:
    permit = breaker.acquire()
    breaker.record(permit, (exc or Boom("x")) if fail else None)


def wait_half_open(breaker: CircuitBreaker) -> None:
    time.sleep(breaker.config.recovery_timeout + 0.05)


def test_trips_when_the_failure_rate_reaches_the_threshold_with_minimum_calls(settings):
    """3 failures are below minimum_calls=4; the 4th failure opens it; then calls are refused
    with the remaining open time."""
    breaker = make(settings)
    for _ in range(3):
        outcome(breaker, True)
    assert breaker.status()["state"] == "closed"
    outcome(breaker, True)
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()
    assert info.value.state == "open" and 0 < info.value.retry_after <= 0.3
    status = breaker.status()
    assert status["state"] == "open" and status["trips"] == 1
    assert status["history"][0]["reason"] == "failure rate 100.0% over 4 calls"


def test_a_steady_half_failure_rate_trips_even_though_successes_interleave(settings):
    """pybreaker's trap: alternating success/failure resets a consecutive counter forever; the
    sliding-window failure rate (50% >= 50%) trips at the minimum number of calls."""
    breaker = make(settings)
    for i in range(4):
        outcome(breaker, fail=i % 2 == 0)
    assert breaker.status()["state"] == "open"


def test_a_failure_rate_below_the_threshold_keeps_it_closed(settings):
    """1 failure in 4 (25%) with a 50% threshold stays closed over many calls."""
    breaker = make(settings)
    for i in range(20):
        outcome(breaker, fail=i % 4 == 0)
    status = breaker.status()
    assert status["state"] == "closed"
    assert status["window"]["calls"] == 10 and status["window"]["failures"] in (2, 3)


def test_the_window_forgets_calls_older_than_its_size(settings):
    """A count-based window of 4 holds the last 4 outcomes only."""
    breaker = make(settings, window_size=4, minimum_calls=4, failure_rate_threshold=75)
    outcome(breaker, True)
    outcome(breaker, True)
    for _ in range(4):
        outcome(breaker, False)
    window = breaker.status()["window"]
    assert (window["calls"], window["failures"]) == (4, 0)


def test_consecutive_failures_trip_before_the_minimum_number_of_calls(settings):
    """consecutive_failures=3 opens after 3 failures in a row even with minimum_calls=10."""
    breaker = make(settings, minimum_calls=10, window_size=20, consecutive_failures=3)
    outcome(breaker, True)
    outcome(breaker, False)
    outcome(breaker, True)
    outcome(breaker, True)
    assert breaker.status()["state"] == "closed"
    outcome(breaker, True)
    status = breaker.status()
    assert status["state"] == "open"
    assert status["history"][0]["reason"] == "3 consecutive failures"


def test_slow_calls_trip_on_the_slow_call_rate(settings):
    """Calls slower than slow_call_duration count as slow; 100% slow over 4 calls opens it."""
    breaker = make(settings, slow_call_duration=0.02, slow_call_rate_threshold=100)
    for _ in range(4):
        with breaker:
            time.sleep(0.03)
    status = breaker.status()
    assert status["state"] == "open"
    assert status["history"][0]["reason"].startswith("slow call rate 100.0%")


def test_half_open_lets_exactly_k_trial_calls_through_under_concurrency(settings):
    """After the recovery timeout, 24 threads race for permits: exactly half_open_calls win."""
    breaker = make(settings, half_open_calls=3)
    for _ in range(4):
        outcome(breaker, True)
    wait_half_open(breaker)
    barrier = threading.Barrier(24)
    won: list[cb.Permit] = []
    refused: list[CircuitOpenError] = []
    lock = threading.Lock()

    def race() -> None:
        barrier.wait()
        try:
            permit = breaker.acquire()
        except CircuitOpenError as exc:
            with lock:
                refused.append(exc)
        else:
            with lock:
                won.append(permit)

    threads = [threading.Thread(target=race) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 3 and len(refused) == 21
    assert {e.state for e in refused} == {"half_open"}
    assert {e.retry_after for e in refused} == {breaker.config.half_open_retry}
    for permit in won:
        breaker.record(permit)
    assert breaker.status()["state"] == "closed"


def test_a_failed_trial_reopens_and_counts_a_trip(settings):
    """In half-open one failing trial reopens the breaker (a second trip); the other trial's
    late success is ignored (it belongs to the previous generation)."""
    breaker = make(settings)
    for _ in range(4):
        outcome(breaker, True)
    wait_half_open(breaker)
    first, second = breaker.acquire(), breaker.acquire()
    breaker.record(first, Boom("still down"))
    breaker.record(second)
    status = breaker.status()
    assert status["state"] == "open" and status["trips"] == 2
    assert status["history"][0]["reason"] == "trial call failed"


def test_an_outcome_from_before_a_trip_is_ignored(settings):
    """A call admitted while closed that ends after the breaker opened does not count in the
    new state (generation check)."""
    breaker = make(settings)
    early = breaker.acquire()
    for _ in range(4):
        outcome(breaker, True)
    breaker.record(early)
    wait_half_open(breaker)
    trial = breaker.acquire()
    breaker.record(early, Boom("late"))  # still the old generation
    assert breaker.status()["state"] == "half_open"
    breaker.record(trial)
    assert breaker.status()["half_open"]["successes"] == 1


def test_lost_trials_reopen_the_breaker_after_max_half_open(settings):
    """Trial permits whose holders never report (crashed worker) do not wedge the breaker: after
    max_half_open seconds in half-open the next call reopens it."""
    breaker = make(settings, half_open_calls=1, max_half_open=0.2)
    for _ in range(4):
        outcome(breaker, True)
    wait_half_open(breaker)
    breaker.acquire()  # never recorded
    with pytest.raises(CircuitOpenError):
        breaker.acquire()
    time.sleep(0.3)
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()
    assert info.value.state == "open"
    assert breaker.status()["history"][0]["reason"].startswith("no trial result within")


def test_ignored_exceptions_are_no_call_and_unlisted_ones_are_successes(settings):
    """ignore_exceptions neither fail nor succeed; exceptions outside record_exceptions count
    as successes (resilience4j's rule)."""
    breaker = make(settings, record_exceptions=(Boom,), ignore_exceptions=(KeyError,))
    for _ in range(6):
        outcome(breaker, True, KeyError("ignored"))
    for _ in range(6):
        outcome(breaker, True, NotMine("not recorded"))
    window = breaker.status()["window"]
    assert (window["calls"], window["failures"]) == (6, 0)


def test_context_manager_decorator_and_open_error_for_callers_outside_tasks(settings):
    """``with breaker:`` and ``@breaker`` record outcomes; once open, a caller outside a task
    gets CircuitOpenError and the function is not called."""
    breaker = make(settings)
    calls = []

    @breaker
    def dependency(fail: bool) -> str:
        calls.append(fail)
        if fail:
            raise Boom("down")
        return "ok"

    assert dependency(False) == "ok"
    for _ in range(3):
        with pytest.raises(Boom):
            dependency(True)
    assert breaker.status()["state"] == "open"  # 3 of 4 failed
    with pytest.raises(CircuitOpenError):
        dependency(False)
    with pytest.raises(CircuitOpenError), breaker:
        calls.append("inside")
    assert len(calls) == 4


def test_operator_can_force_open_force_closed_and_reset(settings):
    """forced_open refuses with no automatic end; forced_closed admits everything and never
    trips; reset returns to closed. Forcing is not counted as a trip."""
    breaker = make(settings)
    assert breaker.force_open() == "forced_open"
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()
    assert info.value.retry_after is None
    assert cb.force(settings, breaker.name, "closed") == "forced_closed"
    for _ in range(10):
        outcome(breaker, True)
    assert breaker.status()["state"] == "forced_closed"
    assert breaker.reset() == "closed"
    assert breaker.status()["trips"] == 0
    with pytest.raises(ValueError):
        cb.force(settings, breaker.name, "sideways")  # type: ignore[arg-type]


def test_monitor_lists_breakers_and_counts_trips_as_kpi(settings):
    """get_circuit_breakers() shows state, counts and config; get_kpis() counts trips."""
    breaker = make(settings)
    for _ in range(4):
        outcome(breaker, True)
    monitor = CeleryMonitor(settings)
    listed = {b["name"]: b for b in monitor.get_circuit_breakers()}
    assert listed[breaker.name]["state"] == "open"
    assert listed[breaker.name]["config"]["minimum_calls"] == 4
    assert listed[breaker.name]["retry_after"] is not None
    assert monitor.get_kpis("5m")["circuit_breaker_trips"]["value"] == 1
    assert count_trips(monitor.redis, Keys(settings.key_prefix), 0, time.time() + 1) == 1


def test_redis_unreachable_fails_open(redis_url):
    """With nothing listening on REDIS_URL the protected call runs (fail open) and nothing
    raises; outcomes are simply not recorded."""
    from celery_warden.embedded import free_port

    dead = make_settings(f"redis://127.0.0.1:{free_port()}/0")
    breaker = make(dead)
    for _ in range(6):
        with pytest.raises(Boom), breaker:
            raise Boom("down")
    assert breaker.call(lambda: "ran") == "ran"


@pytest.mark.parametrize("bad", [
    {"failure_rate_threshold": 0}, {"failure_rate_threshold": 101}, {"window_size": 0},
    {"minimum_calls": 30, "window_size": 20}, {"half_open_calls": 0},
    {"recovery_timeout": 0}, {"consecutive_failures": -1},
])
def test_invalid_configuration_is_refused(bad):
    """A configuration that could never trip (or never recover) is a ValueError up front."""
    with pytest.raises(ValueError):
        BreakerConfig(**bad)
