"""Keys: the whole keyspace lives under one prefix, and fleets with different prefixes are apart."""

from __future__ import annotations

import fnmatch
import inspect

import pytest

from celery_warden.keys import HOUR, MINUTE, Keys, hour_of, minute_of


def every_key(keys: Keys) -> list[str]:
    """One key of every kind Keys can build (found by introspection, so new kinds are covered)."""
    samples = {"str": "3f2c-task-id", "int": 1_700_000_040}
    built = []
    for name, attr in inspect.getmembers(Keys):
        if name.startswith("_") or name in ("prefix", "pattern"):
            continue
        if isinstance(attr, property):
            built.append(getattr(keys, name))
        elif callable(attr):
            params = list(inspect.signature(attr).parameters.values())[1:]
            built.append(getattr(keys, name)(*(samples[p.annotation] for p in params)))
    assert len(built) >= 9
    return built


@pytest.mark.parametrize("prefix", ["warden", "fleet-a", "wtabc123n7", "x.y_z"])
def test_every_key_is_under_the_prefix(prefix):
    """Every key starts with '<prefix>:' and matches the clean-up glob, and no two kinds collide."""
    keys = Keys(prefix)
    built = every_key(keys)
    for key in built:
        assert key.startswith(f"{prefix}:")
        assert fnmatch.fnmatchcase(key, keys.pattern)
    assert len(set(built)) == len(built)


@pytest.mark.parametrize(("a", "b"), [("warden", "warden2"), ("wtabcn1", "wtabcn10"),
                                      ("fleet-a", "fleet-b"), ("w", "warden")])
def test_distinct_prefixes_do_not_overlap(a, b):
    """No key of one prefix matches the other prefix's glob (so scoped clean-up is safe)."""
    ka, kb = Keys(a), Keys(b)
    assert not set(every_key(ka)) & set(every_key(kb))
    assert not any(fnmatch.fnmatchcase(k, kb.pattern) for k in every_key(ka))
    assert not any(fnmatch.fnmatchcase(k, ka.pattern) for k in every_key(kb))


def test_bucket_keys_carry_name_and_period_start():
    """Bucket keys name the task and the epoch second the minute or hour starts at."""
    keys = Keys("p")
    assert keys.minute_bucket("fleet.add", 120) == "p:m:fleet.add:120"
    assert keys.hour_bucket("fleet.add", 7200) == "p:h:fleet.add:7200"
    assert keys.minute_bucket("a", 60) != keys.hour_bucket("a", 60)


@pytest.mark.parametrize("ts", [0.0, 59.999, 60.0, 1_700_000_123.456, 3599.9, 3600.0])
def test_minute_and_hour_of_floor_to_period_start(ts):
    """minute_of/hour_of return the start of the period containing ts (multiples of 60/3600)."""
    m, h = minute_of(ts), hour_of(ts)
    assert m % MINUTE == 0 and m <= ts < m + MINUTE
    assert h % HOUR == 0 and h <= ts < h + HOUR
