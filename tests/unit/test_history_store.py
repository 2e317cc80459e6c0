"""The history stores of ``warden serve`` on a real Redis: queue depth samples and roll-ups
(resolutions, bounds), worker transitions (every reason, the bounds, newest first)."""

from __future__ import annotations

from typing import Any

import redis

from celery_warden.keys import Keys
from celery_warden.read.depth_history import DepthHistory, DepthSample
from celery_warden.read.worker_history import PER_WORKER, WorkerHistory

NOW = 1_800_000_000.0  # a multiple of 300: the start of a 5-minute bucket
OFFLINE_AFTER = 30.0


def _write_depths(store: DepthHistory, ts: float, depth: int, age: float | None) -> None:
    sample = [DepthSample("q[i]", depth, age)]
    current = store.current(["q[i]"], ts)
    pipe = store.redis.pipeline()
    store.write(pipe, sample, ts, current)
    pipe.execute()


def test_depth_samples_and_rollups(settings, redis_client: redis.Redis):
    store = DepthHistory(redis_client, Keys(settings.key_prefix), interval=15.0)
    _write_depths(store, NOW - 86400 - 10, 99, None)  # older than a day: not served
    for i, depth in enumerate((4, 10, 7)):
        _write_depths(store, NOW + 15 * i, depth, 2.0 + i)
    _write_depths(store, NOW + 300, 1, None)  # the next bucket
    raw = store.series("q[i]", "15m", NOW + 301)
    assert raw["resolution"] == "sample" and raw["step_seconds"] is None
    assert [(p["depth"], p["oldest_age_s"]) for p in raw["points"]] == [
        (4, 2.0), (10, 3.0), (7, 4.0), (1, None)]
    day = store.series("q[i]", "24h", NOW + 301)
    assert day["step_seconds"] == 300
    first, second = day["points"]
    assert (first["ts"], first["samples"], first["depth"], first["depth_max"],
            first["oldest_age_s"]) == (NOW, 3, 7.0, 10, 4.0)
    assert (second["samples"], second["depth_max"], second["oldest_age_s"]) == (1, 1, None)
    assert [p["depth"] for p in day["points"]] == [7.0, 1.0]  # the day-old one is outside
    week = store.series("q[i]", "7d", NOW + 301)["points"]
    assert [p["depth"] for p in week] == [99.0, 7.0, 1.0]
    assert 0 < redis_client.ttl(store.keys.depth_rollups("q[i]")) <= 8 * 86400
    assert redis_client.llen(store.keys.depth_rollups("q[i]")) == 3  # last one rewritten


def test_depth_history_is_bounded_by_count(settings, redis_client: redis.Redis):
    store = DepthHistory(redis_client, Keys(settings.key_prefix), interval=3600.0)
    assert store.raw_max == 40  # a day at one an hour, plus slack
    for i in range(60):
        _write_depths(store, NOW + 3600 * i, i, None)
    assert redis_client.llen(store.keys.depth_samples("q[i]")) == store.raw_max
    kept = redis_client.lrange(store.keys.depth_samples("q[i]"), 0, 0)[0]
    assert kept.startswith(f"{NOW + 3600 * 20:.1f}:20:")  # the oldest dropped first
    assert redis_client.llen(store.keys.depth_rollups("q[i]")) == 60


def _worker(host: str, status: str, state: str, age: float) -> dict[str, Any]:
    return {"hostname": host, "status": status, "state": state, "heartbeat_age": age}


def test_worker_changes_every_reason(settings, redis_client: redis.Redis):
    history = WorkerHistory(redis_client, Keys(settings.key_prefix))
    known = {
        "stopped@h": {"status": "online"}, "lost@h": {"status": "online"},
        "back@h": {"status": "offline"}, "same@h": {"status": "online"},
        "pruned@h": {"status": "online"}, "gone@h": {"status": "offline"},
    }
    workers = [
        _worker("stopped@h", "offline", "stopped", 5.0),
        _worker("lost@h", "offline", "lost", 40.0),
        _worker("back@h", "online", "online", 1.0),
        _worker("same@h", "online", "online", 1.0),
        _worker("new@h", "online", "online", 2.0),
        _worker("dead-before@h", "offline", "lost", 500.0),
    ]
    put, forget, transitions = history.changes(workers, known, OFFLINE_AFTER, NOW)
    got = {t["hostname"]: (t["status"], t["reason"], t["ts"]) for t in transitions}
    assert got == {
        "stopped@h": ("offline", "shutdown", NOW - 5),
        "lost@h": ("offline", "lost", NOW - 40 + OFFLINE_AFTER),
        "back@h": ("online", "heartbeat", NOW - 1),
        "new@h": ("online", "started", NOW - 2),
        "pruned@h": ("offline", "expired", NOW),
    }
    # Already offline when first seen: a status (offline_since) but no transition.
    assert put["dead-before@h"] == {"status": "offline", "since": NOW - 500 + OFFLINE_AFTER,
                                    "reason": "lost"}
    assert "same@h" not in put and sorted(forget) == ["gone@h", "pruned@h"]


def test_worker_history_bounds_and_order(settings, redis_client: redis.Redis):
    history = WorkerHistory(redis_client, Keys(settings.key_prefix), max_count=150,
                            max_age=3600)
    for i in range(PER_WORKER + 20):
        t = {"hostname": "w[i]@h", "status": "online" if i % 2 else "offline",
             "reason": "heartbeat" if i % 2 else "lost", "ts": NOW + i, "detected_at": NOW + i}
        other = {**t, "hostname": "x@h"}
        pipe = redis_client.pipeline()
        history.write(pipe, {}, [], [t, other], NOW + i)
        pipe.execute()
    one = history.recent(1000, "w[i]@h")
    assert len(one) == PER_WORKER and one[0]["ts"] == NOW + PER_WORKER + 19
    assert one[0]["at"] is not None
    fleet = redis_client.zrange(history.keys.worker_history, 0, -1)
    assert len(fleet) == 150  # fleet-wide cap, oldest dropped first
    assert 0 < redis_client.ttl(history.keys.worker_transitions("w[i]@h")) <= 3600
    pipe = redis_client.pipeline()
    history.write(pipe, {}, [], [{**t, "ts": NOW + 7200}], NOW + 7200)
    pipe.execute()
    assert redis_client.zcard(history.keys.worker_history) == 1  # older than max_age: gone
