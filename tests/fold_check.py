"""Checks that the fleet-wide buckets and the cross-name summaries equal what they fold.

Independent of the writer's folding code (:mod:`celery_warden.record.fold`): it reads every
name's own minute and hour buckets back from Redis and adds them up here.
"""

from __future__ import annotations

import json
import math
from typing import cast

import redis

from celery_warden.keys import BLOCK, HOUR, MINUTE, Keys

FLOATS = ("dsum", "wsum")


def expected_fleet(buckets: list[dict[str, str]]) -> dict[str, float]:
    """Every field of ``buckets`` combined as the store combines it (sums, min, max)."""
    out: dict[str, float] = {}
    for b in buckets:
        for k, v in b.items():
            x = float(v)
            if k == "dmin":
                out[k] = min(out.get(k, math.inf), x)
            elif k == "dmax":
                out[k] = max(out.get(k, -math.inf), x)
            else:
                out[k] = out.get(k, 0.0) + x
    return out


def mismatches(client: redis.Redis, keys: Keys, names: list[str], start: int,
               end: int) -> list[str]:
    """Differences between folded and per-name data for every minute, 10-minute block and
    hour in [start, end] (epoch seconds): fleet buckets, name and fleet blocks, summaries;
    empty when they agree."""
    problems: list[str] = []
    periods = [(m, MINUTE) for m in range(start - start % MINUTE, end + 1, MINUTE)]
    periods += [(h, HOUR) for h in range(start - start % HOUR, end + 1, HOUR)]
    for t, width in periods:
        hourly = width == HOUR
        per = {n: cast(dict[str, str], client.hgetall(
            keys.hour_bucket(n, t) if hourly else keys.minute_bucket(n, t))) for n in names}
        fleet = cast(dict[str, str], client.hgetall(
            keys.fleet_hour(t) if hourly else keys.fleet_minute(t)))
        want = expected_fleet(list(per.values()))
        got = {k: float(v) for k, v in fleet.items()}
        if set(got) != set(want):
            problems.append(f"{t}/{width}: fleet fields {sorted(set(got) ^ set(want))} differ")
        for k, v in want.items():
            same = math.isclose(got.get(k, math.nan), v, rel_tol=1e-9, abs_tol=1e-9)
            if not same:
                problems.append(f"{t}/{width}: fleet {k} = {got.get(k)}, names sum to {v}")
        packed = cast(dict[str, str], client.hgetall(
            keys.summary_hour(t) if hourly else keys.summary_minute(t)))
        expected = {f"{k}:{n}": float(v) for n, b in per.items() for k, v in b.items()
                    if _summarised(k)}
        _compare_summary(f"{t}/{width}", packed, expected, "bucket says", problems)
    for b in range(start - start % BLOCK, end + 1, BLOCK):
        per_block: dict[str, float] = {}
        name_blocks = []
        for n in names:
            minutes = [cast(dict[str, str], client.hgetall(keys.minute_bucket(n, m)))
                       for m in range(b, b + BLOCK, MINUTE)]
            for k, v in ((k, v) for bucket in minutes for k, v in bucket.items()):
                if _summarised(k):
                    per_block[f"{k}:{n}"] = per_block.get(f"{k}:{n}", 0.0) + float(v)
            name_block = cast(dict[str, str], client.hgetall(keys.name_block(n, b)))
            _compare_fold(f"{b}/block {n}", name_block, expected_fleet(minutes), problems)
            name_blocks.append(name_block)
        fleet_block = cast(dict[str, str], client.hgetall(keys.fleet_block(b)))
        _compare_fold(f"{b}/fleet block", fleet_block, expected_fleet(name_blocks), problems)
        packed = cast(dict[str, str], client.hgetall(keys.summary_block(b)))
        _compare_summary(f"{b}/block", packed, per_block, "buckets say", problems)
    return problems


def _compare_fold(label: str, folded: dict[str, str], want: dict[str, float],
                  problems: list[str]) -> None:
    """A folded bucket (a 10-minute block) against the buckets it folds, field by field."""
    got = {k: float(v) for k, v in folded.items()}
    if set(got) != set(want):
        problems.append(f"{label}: fields {sorted(set(got) ^ set(want))} differ")
    for k, v in want.items():
        if not math.isclose(got.get(k, math.nan), v, rel_tol=1e-9, abs_tol=1e-9):
            problems.append(f"{label}: {k} = {got.get(k)}, its buckets sum to {v}")


def _summarised(field: str) -> bool:
    """Whether a bucket field is carried into the cross-name summaries: the counters, ``done``
    and ``dsum``; not the histogram slots (``h<i>``, ``w<i>``), the wait mean or min/max."""
    slot = field[:1] in ("h", "w") and field[1:].isdigit()
    return field in ("done", "dsum") or (not slot and field not in ("wn", "wsum", "dmin", "dmax"))


def _compare_summary(label: str, packed: dict[str, str], expected: dict[str, float],
                     source: str, problems: list[str]) -> None:
    """A packed summary hash against the sums expected of it, every difference reported.
    Unpacked here on purpose (not with the reader's helper): a JSON object per name."""
    got = {f"{k}:{n}": v for n, value in packed.items() for k, v in json.loads(value).items()}
    if got.keys() != expected.keys():
        problems.append(f"{label}: summary fields differ: {sorted(set(got) ^ set(expected))}")
    for k, v in expected.items():
        if not math.isclose(float(got.get(k, math.nan)), v, rel_tol=1e-9, abs_tol=1e-9):
            problems.append(f"{label}: summary {k} = {got.get(k)}, {source} {v}")


__all__ = ["expected_fleet", "mismatches"]
