"""``iso`` formats a timestamp exactly as ``datetime`` does (its own arithmetic is only a
faster way there): whole seconds, microseconds rounded half to even (also up into the next
second), the store's ``%.6f`` strings, values outside the fast range, unreadable input."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from celery_warden.timefmt import iso


def reference(value: float) -> str:
    return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")


def test_iso_is_datetimes_isoformat() -> None:
    rng = random.Random(11)
    values: list[float] = [0.0, 1.0, 1795868555.0, 1795868555.5, 1795868555.9999995,
                           1795868555.0000005, 1795868555.0000015, 3999999999.9999999]
    for _ in range(20_000):
        whole = rng.randrange(0, 4_000_000_000)
        values += [whole + rng.random(), whole + rng.randrange(2_000_000) / 2e6,
                   float(f"{whole + rng.random():.6f}"),
                   whole + 0.9999995 + rng.uniform(-1e-7, 1e-7)]
    for v in values:
        assert iso(v) == reference(v), v
        assert iso(f"{v:.6f}") == reference(float(f"{v:.6f}")), v


@pytest.mark.parametrize("value", [-1.5, -86400.25, 4e9, 5e9 + 0.5, 253402300799.0])
def test_outside_the_fast_range_datetime_formats_it(value: float) -> None:
    assert iso(value) == reference(value)


@pytest.mark.parametrize("value", [None, "", "abc", "1.2.3", object(), "nan", float("inf"),
                                   "-inf", "1e20", -1e20])
def test_unreadable_is_none(value: object) -> None:
    assert iso(value) is None


@pytest.mark.parametrize("text", ["1795878782.134375", "1795878782.000000", "0999999999.500000",
                                  "3999999999.999999", "4000000000.000000",
                                  "\u0661795878782.134375", "1795878782.13437\u0665",
                                  "1795878782,134375", " 795878782.134375"])
def test_the_stores_strings_read_as_their_number(text: str) -> None:
    """A ``%.6f`` string is formatted from its digits; anything like it but not quite (other
    digits, a comma, a blank, out of range) as the number ``float`` reads, or ``None``."""
    try:
        expected: str | None = reference(float(text))
    except ValueError:
        expected = None
    assert iso(text) == expected


def test_the_head_cache_stays_bounded_and_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past its bound the cache of whole seconds is emptied, never wrong: every store string
    still formats as ``datetime`` does, and a cached second with a damaged fraction does not
    take the fast path."""
    from celery_warden import timefmt

    monkeypatch.setattr(timefmt, "_MAX_HEADS", 8)
    monkeypatch.setattr(timefmt, "_HEADS", {})
    rng = random.Random(3)
    for _ in range(200):
        text = f"{rng.randrange(1_000_000_000, 3_999_999_999) + rng.random():.6f}"
        assert iso(text) == reference(float(text)) == iso(text)
        assert len(timefmt._HEADS) <= 8
    assert iso(text[:11] + "12345x") is None and iso(text[:10] + ",123456") is None
