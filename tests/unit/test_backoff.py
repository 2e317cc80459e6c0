"""Backoff: exact deterministic delays, jitter bounds and spread, overflow safety, validation."""

from __future__ import annotations

import random
import sys

import pytest

from celery_warden.tasks.backoff import (
    DEFAULT_BASE,
    DEFAULT_CAP,
    DEFAULT_FACTOR,
    DEFAULT_JITTER,
    Backoff,
)

SAMPLES = 2_000


@pytest.mark.parametrize(("base", "factor", "cap"), [
    (1.0, 2.0, 300.0), (0.5, 3.0, 60.0), (0.2, 1.5, 7.0), (2.0, 1.0, 10.0), (10.0, 2.0, 5.0),
])
def test_none_jitter_is_base_times_factor_power_capped_exactly(base, factor, cap):
    """With jitter "none" the delay for retry n is exactly min(cap, base * factor ** n)."""
    policy = Backoff(base=base, factor=factor, cap=cap, jitter="none")
    for n in range(40):
        expected = min(cap, base * factor**n)
        assert policy.delay(n) == expected
        assert policy.raw(n) == expected
        assert policy.bounds(n) == (expected, expected)


def test_defaults_are_the_documented_module_constants():
    """A bare Backoff uses base 1 s, factor 2, cap 300 s and full jitter."""
    policy = Backoff()
    assert (policy.base, policy.factor, policy.cap, policy.jitter) == (
        DEFAULT_BASE, DEFAULT_FACTOR, DEFAULT_CAP, DEFAULT_JITTER)
    assert (DEFAULT_BASE, DEFAULT_FACTOR, DEFAULT_CAP, DEFAULT_JITTER) == (1.0, 2.0, 300.0, "full")


def test_negative_retry_count_is_treated_as_zero():
    """A negative retry count gives the first delay, never a fraction of the base."""
    policy = Backoff(base=1.5, factor=2.0, cap=100.0, jitter="none")
    assert policy.delay(-5) == 1.5


def test_the_cap_is_reached_and_held():
    """Once base * factor ** n passes the cap, every later delay is exactly the cap."""
    policy = Backoff(base=1.0, factor=2.0, cap=300.0, jitter="none")
    assert policy.delay(8) == 256.0
    assert [policy.delay(n) for n in range(9, 200)] == [300.0] * 191


@pytest.mark.parametrize("n", [0, 1, 3, 6, 12, 500])
def test_full_jitter_stays_within_zero_and_raw(n):
    """Full jitter draws every delay from [0, raw(n)]."""
    policy = Backoff(base=0.5, factor=2.0, cap=120.0, jitter="full")
    raw = policy.raw(n)
    rng = random.Random(n)
    delays = [policy.delay(n, rng) for _ in range(SAMPLES)]
    assert all(0.0 <= d <= raw for d in delays)
    assert policy.bounds(n) == (0.0, raw)


@pytest.mark.parametrize("n", [0, 1, 3, 6, 12, 500])
def test_equal_jitter_stays_within_half_raw_and_raw(n):
    """Equal jitter keeps a guaranteed minimum: every delay is in [raw(n)/2, raw(n)]."""
    policy = Backoff(base=0.5, factor=2.0, cap=120.0, jitter="equal")
    raw = policy.raw(n)
    rng = random.Random(n)
    delays = [policy.delay(n, rng) for _ in range(SAMPLES)]
    assert all(raw / 2 <= d <= raw for d in delays)
    assert policy.bounds(n) == (raw / 2, raw)


@pytest.mark.parametrize("jitter", ["full", "equal"])
def test_jitter_spreads_delays_over_the_whole_interval(jitter):
    """Jittered delays differ from each other and cover the interval: samples land in every
    tenth of [low, high] (a retry stampede is spread out, not shifted)."""
    policy = Backoff(base=1.0, factor=2.0, cap=300.0, jitter=jitter)
    low, high = policy.bounds(5)
    rng = random.Random(1234)
    delays = [policy.delay(5, rng) for _ in range(SAMPLES)]
    assert len(set(delays)) > SAMPLES * 0.99
    deciles = {min(9, int((d - low) / (high - low) * 10)) for d in delays}
    assert deciles == set(range(10))
    assert min(delays) < low + (high - low) * 0.02
    assert max(delays) > high - (high - low) * 0.02


def test_jitter_uses_the_module_random_when_no_rng_is_given():
    """Without an explicit rng the delays still vary and stay within bounds."""
    policy = Backoff(base=1.0, factor=2.0, cap=300.0, jitter="full")
    delays = {policy.delay(3) for _ in range(200)}
    assert len(delays) > 1
    assert all(0.0 <= d <= 8.0 for d in delays)


@pytest.mark.parametrize("n", [1_000, 10_000, 10**9, sys.maxsize, 10**30])
@pytest.mark.parametrize("jitter", ["none", "full", "equal"])
def test_huge_retry_counts_do_not_overflow(n, jitter):
    """base * factor ** n would overflow a float for huge n; the delay is still the cap."""
    policy = Backoff(base=1.0, factor=2.0, cap=300.0, jitter=jitter)
    assert policy.raw(n) == 300.0
    low, high = policy.bounds(n)
    assert low <= policy.delay(n, random.Random(0)) <= high == 300.0


def test_huge_factor_and_retry_counts_do_not_overflow():
    """Even factor 1e300 for retry 10 is computed in log space and capped."""
    policy = Backoff(base=0.001, factor=1e300, cap=42.0, jitter="none")
    assert policy.delay(10) == 42.0
    assert policy.delay(0) == 0.001


def test_zero_base_is_always_zero():
    """base 0 means retry immediately, whatever the retry count or jitter."""
    for jitter in ("none", "full", "equal"):
        policy = Backoff(base=0.0, factor=2.0, cap=300.0, jitter=jitter)
        assert [policy.delay(n) for n in (0, 5, 10**9)] == [0.0, 0.0, 0.0]


def test_zero_cap_is_always_zero():
    """cap 0 caps every delay at 0 (no overflow, no division by zero)."""
    policy = Backoff(base=1.0, factor=2.0, cap=0.0, jitter="none")
    assert [policy.delay(n) for n in (0, 1, 10**9)] == [0.0, 0.0, 0.0]


def test_factor_one_is_constant_delay():
    """factor 1 gives the same delay (the base) for every retry, up to the cap."""
    policy = Backoff(base=3.0, factor=1.0, cap=300.0, jitter="none")
    assert {policy.delay(n) for n in (0, 1, 50, 10**12)} == {3.0}


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"base": -1.0}, "base and cap"),
    ({"cap": -0.5}, "base and cap"),
    ({"factor": 0.5}, "factor"),
    ({"factor": 0.0}, "factor"),
    ({"jitter": "random"}, "jitter"),
    ({"jitter": "None"}, "jitter"),
])
def test_invalid_parameters_raise(kwargs, match):
    """Negative base/cap, factor below 1 and unknown jitter modes are refused at construction."""
    with pytest.raises(ValueError, match=match):
        Backoff(**kwargs)


def test_with_overrides_applies_prefixed_and_plain_names():
    """``backoff_*`` and bare field names override; None values and unrelated names are ignored;
    the original is unchanged (frozen value object)."""
    policy = Backoff(base=1.0, factor=2.0, cap=300.0, jitter="full")
    changed = policy.with_overrides(backoff_base=0.5, backoff_cap=60, factor=3.0,
                                    backoff_jitter=None, max_retries=7, dead_letter=False)
    assert changed == Backoff(base=0.5, factor=3.0, cap=60, jitter="full")
    assert policy == Backoff(base=1.0, factor=2.0, cap=300.0, jitter="full")
    assert changed.with_overrides(backoff_jitter="none").delay(2) == 4.5


def test_with_overrides_without_changes_returns_the_same_object():
    """No applicable override: the very same policy is returned."""
    policy = Backoff()
    assert policy.with_overrides() is policy
    assert policy.with_overrides(backoff_base=None, unrelated=1) is policy


def test_with_overrides_validates_the_result():
    """An override that makes the policy invalid raises like the constructor does."""
    with pytest.raises(ValueError, match="factor"):
        Backoff().with_overrides(backoff_factor=0.1)
    with pytest.raises(ValueError, match="jitter"):
        Backoff().with_overrides(backoff_jitter="sometimes")
