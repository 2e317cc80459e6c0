"""Queue depth history: what the sampler of ``warden serve`` writes, and the series it reads.

Two resolutions per queue, both Redis lists in time order (oldest first):

* every sample (``P:qd:<queue>``: ``<ts>:<depth>:<oldest age>``) for 24 hours: at most a day's
  worth at the sampling interval (:meth:`DepthHistory.raw_max`);
* 5-minute roll-ups (``P:qd5:<queue>``: ``<start>:<samples>:<avg>:<max>:<max oldest age>``)
  for 7 days (2,016 of them), the last one rewritten at each sample from its bucket's samples,
  so a roll-up is always exactly the samples of its five minutes.

Why lists and not sorted sets: a list of short strings costs ~27 bytes a sample against ~120 for
a sorted set past its compact size (measured: 157 KB against 684 KB for a day at 15 s), and the
samples arrive in time order anyway; a read takes the list's tail and keeps what is inside the
window. Both keys carry a TTL a little beyond their window, so a queue nobody samples any more
leaves nothing behind; reads drop what is older than the window (after a pause of the sampler,
a day's worth of samples can span more than a day).

Why not the autoscaler's samples (the history before): those exist only while something polls
``GET /api/v1/autoscale``, over its stabilization window. A chart needs a continuous record.
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
ROLLUP_MAX = ROLLUP_KEEP // ROLLUP + 1

Sample = tuple[float, int, float | None]


@dataclass(frozen=True, slots=True)
class DepthSample:
    queue: str
    depth: int
    oldest_age: float | None


def _raw_member(ts: float, depth: int, age: float | None) -> str:
    return f"{ts:.1f}:{depth}:{'' if age is None else f'{age:.1f}'}"


def _parse_raw(member: str) -> Sample | None:
    try:
        ts, depth, age = member.split(":")
        return float(ts), int(depth), float(age) if age else None
    except ValueError:
        return None


def rollup_of(bucket: int, samples: Sequence[Sample]) -> str:
    """The roll-up member of one 5-minute bucket: ``<start>:<n>:<avg>:<max>:<max age>``."""
    depths = [d for _, d, _ in samples]
    ages = [a for _, _, a in samples if a is not None]
    age = f"{max(ages):.1f}" if ages else ""
    return f"{bucket}:{len(depths)}:{sum(depths) / len(depths):.2f}:{max(depths)}:{age}"


class DepthHistory:
    """Writes and reads the depth history of one fleet (one key prefix) sampled every
    ``interval`` seconds."""

    def __init__(self, client: redis.Redis, keys: Keys, interval: float = 15.0) -> None:
        self.redis = client
        self.keys = keys
        self.interval = interval

    def _tail(self, span: float) -> int:
        """Samples to read to cover ``span`` seconds (the sampler may run up to 1/8 early)."""
        return int(span / (self.interval * 0.8)) + 10

    @property
    def raw_max(self) -> int:
        """Samples kept per queue: a day's worth at the interval."""
        return self._tail(RAW_KEEP)

    def current(self, queues: Sequence[str], ts: float) -> dict[str, tuple[list[Sample], str]]:
        """Per queue: the samples already in the 5-minute bucket of ``ts``, and the last
        roll-up (one round trip)."""
        start = int(ts // ROLLUP) * ROLLUP
        pipe = self.redis.pipeline(transaction=False)
        for q in queues:
            pipe.lrange(self.keys.depth_samples(q), -self._tail(ROLLUP), -1)
            pipe.lindex(self.keys.depth_rollups(q), -1)
        replies = pipe.execute()
        out = {}
        for i, q in enumerate(queues):
            parsed = (_parse_raw(m) for m in cast(list[str], replies[2 * i]))
            out[q] = ([p for p in parsed if p is not None and start <= p[0] < start + ROLLUP],
                      str(replies[2 * i + 1] or ""))
        return out

    def write(self, pipe: Any, samples: Sequence[DepthSample], ts: float,
              current: dict[str, tuple[list[Sample], str]]) -> None:
        """Queue the writes of one round of samples on ``pipe`` (the caller's transaction)."""
        start = int(ts // ROLLUP) * ROLLUP
        for s in samples:
            raw, roll = self.keys.depth_samples(s.queue), self.keys.depth_rollups(s.queue)
            pipe.rpush(raw, _raw_member(ts, s.depth, s.oldest_age))
            pipe.ltrim(raw, -self.raw_max, -1)
            pipe.expire(raw, RAW_KEEP + 3600)
            in_bucket, last = current.get(s.queue, ([], ""))
            member = rollup_of(start, [*in_bucket, (ts, s.depth, s.oldest_age)])
            if last.startswith(f"{start}:"):
                pipe.lset(roll, -1, member)
            else:
                pipe.rpush(roll, member)
                pipe.ltrim(roll, -ROLLUP_MAX, -1)
            pipe.expire(roll, ROLLUP_KEEP + 3600)

    def series(self, queue: str, window: HistoryWindow, now: float) -> dict[str, Any]:
        """Points over ``window``: every sample up to 1 h, 5-minute roll-ups beyond.

        A point is ``{ts, depth, depth_max, oldest_age_s, samples}``; a sample's ``depth`` is
        what the broker answered, a roll-up's is the average over its samples (``depth_max``
        their maximum), and ``oldest_age_s`` is ``null`` where the broker cannot tell (RabbitMQ).
        """
        span = WINDOW_SECONDS[window]
        if span <= RAW_UP_TO:
            members = cast(list[str], self.redis.lrange(
                self.keys.depth_samples(queue), -self._tail(span), -1))
            points = []
            for m in members:
                parsed = _parse_raw(m)
                if parsed is not None and parsed[0] >= now - span:
                    ts, depth, age = parsed
                    points.append({"ts": ts, "depth": depth, "depth_max": depth,
                                   "oldest_age_s": age, "samples": 1})
            return {"resolution": "sample", "step_seconds": None, "points": points}
        members = cast(list[str], self.redis.lrange(
            self.keys.depth_rollups(queue), -(span // ROLLUP + 2), -1))
        points = []
        for m in members:
            try:
                start, n, avg, peak, oldest = m.split(":")
                if float(start) + ROLLUP <= now - span:
                    continue
                points.append({"ts": float(start), "depth": float(avg), "depth_max": int(peak),
                               "oldest_age_s": float(oldest) if oldest else None,
                               "samples": int(n)})
            except ValueError:
                continue
        return {"resolution": "5m", "step_seconds": ROLLUP, "points": points}


__all__ = ["WINDOW_SECONDS", "DepthHistory", "DepthSample", "HistoryWindow", "rollup_of"]
