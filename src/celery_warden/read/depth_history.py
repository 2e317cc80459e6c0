"""Queue depth history: what the sampler of ``warden serve`` writes, and the series it reads.

Two resolutions per queue, both bounded by age (and the first by count):

* every sample (``P:qd:<queue>``: ``<ts>:<depth>:<oldest age>`` scored by time) for 24 hours;
* 5-minute roll-ups (``P:qd5:<queue>``: samples, average and maximum depth, maximum oldest
  age) for 7 days — rebuilt from that bucket's samples at each sample, so a roll-up is always
  exactly the samples of its five minutes, whoever wrote them.

Why not the autoscaler's samples (the history before): those exist only while something polls
``GET /api/v1/autoscale``, over its stabilization window. A chart needs a continuous record.
Both keys carry a TTL a little beyond their window, so a queue nobody samples any more leaves
nothing behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import redis

from celery_warden.keys import Keys

HistoryWindow = Literal["15m", "1h", "24h", "7d"]
WINDOW_SECONDS: dict[str, int] = {"15m": 900, "1h": 3600, "24h": 86400, "7d": 7 * 86400}
#: Samples are served as they are up to this window; longer windows use the roll-ups.
RAW_UP_TO = 3600
ROLLUP = 300
RAW_KEEP = 86400
ROLLUP_KEEP = 7 * 86400
#: Samples kept per queue whatever the age (24 h at one per second is 86,400).
RAW_MAX = 90_000


@dataclass(frozen=True, slots=True)
class DepthSample:
    queue: str
    depth: int
    oldest_age: float | None


def _raw_member(ts: float, depth: int, age: float | None) -> str:
    return f"{ts:.3f}:{depth}:{'' if age is None else f'{age:.3f}'}"


def _parse_raw(member: str) -> tuple[float, int, float | None] | None:
    try:
        ts, depth, age = member.split(":")
        return float(ts), int(depth), float(age) if age else None
    except ValueError:
        return None


def rollup_of(bucket: int, samples: Sequence[tuple[float, int, float | None]]) -> str:
    """The roll-up member of one 5-minute bucket: ``<start>:<n>:<avg>:<max>:<max age>``."""
    depths = [d for _, d, _ in samples]
    ages = [a for _, _, a in samples if a is not None]
    age = f"{max(ages):.3f}" if ages else ""
    return f"{bucket}:{len(depths)}:{sum(depths) / len(depths):.2f}:{max(depths)}:{age}"


class DepthHistory:
    """Writes and reads the depth history of one fleet (one key prefix)."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys

    def bucket_samples(self, queues: Sequence[str],
                       ts: float) -> dict[str, list[tuple[float, int, float | None]]]:
        """The samples already in the 5-minute bucket of ``ts``, per queue (one round trip)."""
        start = int(ts // ROLLUP) * ROLLUP
        pipe = self.redis.pipeline(transaction=False)
        for q in queues:
            pipe.zrangebyscore(self.keys.depth_samples(q), start, f"({start + ROLLUP}")
        out = {}
        for q, members in zip(queues, pipe.execute(), strict=True):
            parsed = (_parse_raw(m) for m in cast(list[str], members))
            out[q] = [p for p in parsed if p is not None]
        return out

    def write(self, pipe: Any, samples: Sequence[DepthSample], ts: float,
              in_bucket: dict[str, list[tuple[float, int, float | None]]]) -> None:
        """Queue the writes of one round of samples on ``pipe`` (the caller's transaction)."""
        start = int(ts // ROLLUP) * ROLLUP
        for s in samples:
            raw, roll = self.keys.depth_samples(s.queue), self.keys.depth_rollups(s.queue)
            pipe.zadd(raw, {_raw_member(ts, s.depth, s.oldest_age): ts})
            pipe.zremrangebyscore(raw, "-inf", ts - RAW_KEEP)
            pipe.zremrangebyrank(raw, 0, -RAW_MAX - 1)
            pipe.expire(raw, RAW_KEEP + 3600)
            bucket = [*in_bucket.get(s.queue, []), (ts, s.depth, s.oldest_age)]
            pipe.zremrangebyscore(roll, start, start)
            pipe.zadd(roll, {rollup_of(start, bucket): start})
            pipe.zremrangebyscore(roll, "-inf", ts - ROLLUP_KEEP)
            pipe.expire(roll, ROLLUP_KEEP + 3600)

    def series(self, queue: str, window: HistoryWindow, now: float) -> dict[str, Any]:
        """Points over ``window``: every sample up to 1 h, 5-minute roll-ups beyond.

        A point is ``{ts, depth, depth_max, oldest_age_s, samples}``; a sample's ``depth`` is
        what the broker answered, a roll-up's is the average over its samples (``depth_max``
        their maximum), and ``oldest_age_s`` is ``null`` where the broker cannot tell (RabbitMQ).
        """
        span = WINDOW_SECONDS[window]
        if span <= RAW_UP_TO:
            members = cast(list[str], self.redis.zrangebyscore(
                self.keys.depth_samples(queue), now - span, "+inf"))
            points = []
            for m in members:
                parsed = _parse_raw(m)
                if parsed is not None:
                    ts, depth, age = parsed
                    points.append({"ts": ts, "depth": depth, "depth_max": depth,
                                   "oldest_age_s": age, "samples": 1})
            return {"resolution": "sample", "step_seconds": None, "points": points}
        members = cast(list[str], self.redis.zrangebyscore(
            self.keys.depth_rollups(queue), now - span, "+inf"))
        points = []
        for m in members:
            try:
                start, n, avg, peak, oldest = m.split(":")
                points.append({"ts": float(start), "depth": float(avg), "depth_max": int(peak),
                               "oldest_age_s": float(oldest) if oldest else None,
                               "samples": int(n)})
            except ValueError:
                continue
        return {"resolution": "5m", "step_seconds": ROLLUP, "points": points}


__all__ = ["WINDOW_SECONDS", "DepthHistory", "DepthSample", "HistoryWindow", "rollup_of"]
