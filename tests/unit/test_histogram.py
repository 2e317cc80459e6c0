"""Histogram: fixed log buckets whose percentiles stay within the documented relative error."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter

import pytest

from celery_warden.record.histogram import (
    FLOOR,
    MAX_INDEX,
    RATIO,
    RELATIVE_ERROR,
    bucket_index,
    bucket_value,
    quantiles,
)

QS = (0.5, 0.95, 0.99)
EPS = 1e-9  # floating-point slack at bucket boundaries


def histogram(values: list[float]) -> dict[int, int]:
    return dict(Counter(bucket_index(v) for v in values))


def exact(values: list[float], q: float) -> float:
    """Nearest-rank quantile of the raw samples (the definition the histogram approximates)."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def estimate(values: list[float]) -> dict[float, float | None]:
    return quantiles(histogram(values), QS, min(values), max(values))


def test_relative_error_constant_matches_ratio():
    """RELATIVE_ERROR is sqrt(RATIO) - 1, about 4.4 %."""
    assert pytest.approx(math.sqrt(RATIO) - 1) == RELATIVE_ERROR
    assert 0.04 < RELATIVE_ERROR < 0.045


def test_bucket_index_is_monotonic_and_bounded():
    """Longer durations never land in a lower bucket; indexes stay within 0..MAX_INDEX."""
    values = [FLOOR * 0.5 * 1.01**i for i in range(3000)]  # 50 µs .. ~ 4e8 s
    indexes = [bucket_index(v) for v in values]
    assert all(a <= b for a, b in itertools.pairwise(indexes))
    assert indexes[0] == 0 and indexes[-1] == MAX_INDEX
    assert min(indexes) >= 0 and max(indexes) <= MAX_INDEX


def test_tiny_and_huge_durations_are_clamped_to_end_buckets():
    """Zero, negative and sub-floor durations go to bucket 0; absurdly long ones to the last."""
    assert bucket_index(0.0) == bucket_index(-1.0) == bucket_index(FLOOR) == 0
    assert bucket_index(FLOOR * 1.0001) == 1
    assert bucket_index(1e12) == MAX_INDEX


@pytest.mark.parametrize("seconds", [2e-4, 1e-3, 0.0123, 0.5, 1.0, 7.77, 60.0, 3600.0, 86400.0])
def test_bucket_value_is_within_relative_error_of_its_members(seconds):
    """The representative value of a duration's bucket is within RELATIVE_ERROR of it."""
    value = bucket_value(bucket_index(seconds))
    assert abs(value - seconds) / seconds <= RELATIVE_ERROR + EPS


def test_empty_histogram_gives_none():
    """No samples: every requested quantile is None (never 0, never an error)."""
    assert quantiles({}, QS) == {0.5: None, 0.95: None, 0.99: None}
    assert quantiles({3: 0, 9: 0}, (0.5,)) == {0.5: None}


@pytest.mark.parametrize(
    "draw",
    [
        pytest.param(lambda r: r.uniform(0.001, 2.0), id="uniform-1ms-2s"),
        pytest.param(lambda r: r.lognormvariate(math.log(0.05), 1.2), id="lognormal-50ms"),
        pytest.param(lambda r: r.choice((r.uniform(0.002, 0.004), r.uniform(1.0, 3.0))),
                     id="bimodal"),
        pytest.param(lambda r: r.expovariate(1 / 0.2), id="exponential-200ms"),
    ],
)
def test_quantiles_of_known_distributions_within_error(draw):
    """p50/p95/p99 of 10,000 samples are within RELATIVE_ERROR of the exact nearest-rank values."""
    rng = random.Random(20240601)
    values = [draw(rng) for _ in range(10_000)]
    got = estimate(values)
    for q in QS:
        want = exact(values, q)
        value = got[q]
        assert value is not None
        assert abs(value - want) / want <= RELATIVE_ERROR + EPS, (q, value, want)
        assert abs(bucket_index(value) - bucket_index(want)) <= 1


def test_merging_histograms_equals_histogram_of_union():
    """Adding bucket counts of two sample sets gives the union's histogram and its percentiles."""
    rng = random.Random(7)
    fast = [rng.uniform(0.001, 0.01) for _ in range(3000)]
    slow = [rng.lognormvariate(0.0, 0.5) for _ in range(1000)]
    merged = Counter(histogram(fast))
    merged.update(histogram(slow))
    union = fast + slow
    assert dict(merged) == histogram(union)
    got = quantiles(merged, QS, min(union), max(union))
    assert got == estimate(union)
    for q in QS:
        want = exact(union, q)
        assert abs(got[q] - want) / want <= RELATIVE_ERROR + EPS


def test_quantiles_are_clamped_to_observed_min_and_max():
    """A bucket's representative value never reports less than the min or more than the max."""
    # Everything in bucket 0 (representative FLOOR) but all samples were 20..50 µs.
    assert quantiles({0: 5}, (0.5, 0.99), lo=2e-5, hi=5e-5) == {0.5: 5e-5, 0.99: 5e-5}
    # A single very long task beyond the last bucket is reported exactly.
    assert quantiles({MAX_INDEX: 1}, (0.5,), lo=1e7, hi=1e7) == {0.5: 1e7}
    # One sample: every quantile equals that sample.
    v = 0.123
    assert quantiles(histogram([v]), QS, v, v) == {q: v for q in QS}


def test_quantiles_use_nearest_rank():
    """With 99 fast samples and 1 slow one, p99 is fast and only p100 reaches the slow bucket."""
    counts = {bucket_index(0.01): 99, bucket_index(5.0): 1}
    got = quantiles(counts, (0.5, 0.99, 1.0))
    assert got[0.5] == got[0.99] == bucket_value(bucket_index(0.01))
    assert got[1.0] == bucket_value(bucket_index(5.0))
