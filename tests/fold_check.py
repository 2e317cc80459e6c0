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
    hour in [start, end] (epoch seconds); empty when they agree."""
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
        # Unpacked here on purpose (not with the reader's helper): a JSON object per name.
        summary = {f"{k}:{n}": v for n, value in packed.items()
                   for k, v in json.loads(value).items()}
        expected: dict[str, float] = {}
        for n, b in per.items():
            for k, v in b.items():
                counter = not (k[:1] in ("h", "w") and k[1:].isdigit())
                if k in ("done", "dsum") or (counter and k not in ("wn", "wsum", "dmin", "dmax")):
                    expected[f"{k}:{n}"] = float(v)
        if summary.keys() != expected.keys():
            problems.append(f"{t}/{width}: summary fields differ: "
                            f"{sorted(set(summary) ^ set(expected))}")
        for k, v in expected.items():
            if not math.isclose(float(summary.get(k, math.nan)), v, rel_tol=1e-9, abs_tol=1e-9):
                problems.append(f"{t}/{width}: summary {k} = {summary.get(k)}, bucket says {v}")
    for b in range(start - start % BLOCK, end + 1, BLOCK):
        per_block: dict[str, float] = {}
        for n in names:
            for m in range(b, b + BLOCK, MINUTE):
                for k, v in cast(dict[str, str], client.hgetall(keys.minute_bucket(n, m))).items():
                    counter = not (k[:1] in ("h", "w") and k[1:].isdigit())
                    if k in ("done", "dsum") or (counter and k not in ("wn", "wsum", "dmin",
                                                                       "dmax")):
                        per_block[f"{k}:{n}"] = per_block.get(f"{k}:{n}", 0.0) + float(v)
        packed = cast(dict[str, str], client.hgetall(keys.summary_block(b)))
        got = {f"{k}:{n}": v for n, value in packed.items()
               for k, v in json.loads(value).items()}
        if got.keys() != per_block.keys():
            problems.append(f"{b}/block: summary fields differ: "
                            f"{sorted(set(got) ^ set(per_block))}")
        for k, v in per_block.items():
            if not math.isclose(float(got.get(k, math.nan)), v, rel_tol=1e-9, abs_tol=1e-9):
                problems.append(f"{b}/block: summary {k} = {got.get(k)}, buckets say {v}")
    return problems


__all__ = ["expected_fleet", "mismatches"]
