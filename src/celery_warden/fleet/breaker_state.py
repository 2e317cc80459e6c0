"""A circuit breaker's stored state, read: what operators see (CLI, API, dashboard).

``lua/breaker.lua`` keeps each breaker in ``P:cb:<name>`` (state, window counts, generation,
config), its transitions in ``P:cbl:<name>`` and every trip in ``P:cbtrips``; this module turns
those into plain dicts. Reading never changes a breaker: an open breaker whose recovery time has
passed is *shown* as ``half_open`` (``effective_state``) but moves there only on the next call.
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

import redis

from celery_warden.keys import Keys
from celery_warden.timefmt import iso

#: Transitions shown per breaker (newest first).
HISTORY_SHOWN = 20


def _f(raw: dict[str, str], name: str) -> float | None:
    value = raw.get(name)
    return None if value in (None, "") else float(value)


def _i(raw: dict[str, str], name: str) -> int:
    return int(float(raw.get(name) or 0))


def read_breakers(conn: redis.Redis, keys: Keys,
                  names: list[str] | None = None) -> list[dict[str, Any]]:
    """Every breaker's state (two pipelined round trips whatever their number)."""
    if names is None:
        names = cast(list[str], conn.zrange(keys.breakers, 0, -1))
    pipe = conn.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(keys.breaker(name))
        pipe.lrange(keys.breaker_log(name), 0, HISTORY_SHOWN - 1)
    replies = pipe.execute()
    now = time.time()
    out = []
    for i, name in enumerate(names):
        raw, log = replies[2 * i], replies[2 * i + 1]
        if raw:
            out.append(_describe(name, raw, log, now))
    return out


def _describe(name: str, raw: dict[str, str], log: list[str], now: float) -> dict[str, Any]:
    state = raw.get("state", "closed")
    until = _f(raw, "until")
    retry_after = None
    effective = state
    if state == "open" and until is not None:
        retry_after = max(0.0, until - now)
        if retry_after == 0.0:
            effective = "half_open"  # the next call moves it there
    n, f, sl = _i(raw, "n"), _i(raw, "f"), _i(raw, "sl")
    try:
        cfg = json.loads(raw.get("cfg") or "{}")
    except ValueError:
        cfg = {}
    return {
        "name": name,
        "known": True,
        "state": state,
        "effective_state": effective,
        "retry_after": retry_after,
        "since": iso(_f(raw, "since")),
        "generation": _i(raw, "gen"),
        "window": {
            "calls": n, "failures": f, "slow_calls": sl,
            "failure_rate": round(100.0 * f / n, 2) if n else None,
            "slow_call_rate": round(100.0 * sl / n, 2) if n else None,
        },
        "consecutive_failures": _i(raw, "cf"),
        "half_open": {"permits_issued": _i(raw, "hp"), "successes": _i(raw, "hs")},
        "trips": _i(raw, "trips"),
        "last_trip_at": iso(_f(raw, "last_trip")),
        "config": {
            "window_size": cfg.get("w"), "minimum_calls": cfg.get("m"),
            "failure_rate_threshold": cfg.get("fr"), "slow_call_rate_threshold": cfg.get("sr"),
            "slow_call_duration": cfg.get("slow"), "consecutive_failures": cfg.get("cf"),
            "half_open_calls": cfg.get("k"), "recovery_timeout": cfg.get("rt"),
            "max_half_open": cfg.get("mh"),
        },
        "history": [_transition(entry) for entry in log],
    }


def _transition(entry: str) -> dict[str, Any]:
    try:
        data = json.loads(entry)
    except ValueError:
        return {"raw": entry}
    data["at"] = iso(float(data["at"])) if "at" in data else None
    return cast(dict[str, Any], data)


def count_trips(conn: redis.Redis, keys: Keys, start: float, end: float) -> int:
    """Trips (transitions to open, fleet-wide) between two epoch times."""
    return int(conn.zcount(keys.breaker_trips, start, end))


__all__ = ["HISTORY_SHOWN", "count_trips", "read_breakers"]
