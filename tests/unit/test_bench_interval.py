"""``bench/interval.py``: the bootstrap interval printed next to a benchmark's median ratio."""

from __future__ import annotations

from bench.interval import decided, median_interval


def test_interval_brackets_the_median_and_is_repeatable() -> None:
    rounds = [0.947, 0.905, 0.915, 0.905, 0.835]
    lo, hi = median_interval(rounds)  # type: ignore[misc]
    assert min(rounds) <= lo <= 0.915 <= hi <= max(rounds)
    assert median_interval(rounds) == (lo, hi)  # fixed seed: JSON and printout agree


def test_identical_rounds_give_a_point_and_too_few_give_none() -> None:
    assert median_interval([1.01] * 5) == (1.01, 1.01)
    assert median_interval([0.9, 1.0]) is None
    assert decided(None, 0.98) == ""


def test_the_words_say_whether_the_run_decides_the_target() -> None:
    spread = [0.983, 0.993, 0.964, 0.965, 0.997]
    assert "does not decide" in decided(median_interval(spread), 0.98)
    tight = [0.90, 0.91, 0.905, 0.902, 0.908]
    assert "outside it" in decided(median_interval(tight), 0.98)
