"""10-minute blocks (``P:m10``/``P:fm10``): a one-hour summary read through them equals the one
read through minutes, exactly, and the upgrade marker ``P:blocks:since`` keeps a store written
by an older version (minutes without blocks) exact."""

from __future__ import annotations

import math
import random
import time

import pytest

from celery_warden.keys import BLOCK, MINUTE, Keys, block_of
from celery_warden.read.metrics import Merged, MetricsReader
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.read.task_types import TaskTypesReader
from celery_warden.record.batch import Batch, BucketDelta
from celery_warden.record.chunks import Chunker
from celery_warden.record.recorder import Recorder
from celery_warden.record.store import StoreWriter
from celery_warden.record.windows import bucket_keys, cover


def manual(settings, made: list[Recorder]) -> Recorder:
    r = Recorder(settings)
    r.stop()  # no background thread: every flush is explicit
    made.append(r)
    return r


def workload(recorders: list[Recorder], names: list[str], start: float, end: float, n: int,
             seed: int) -> dict[str, int]:
    """``n`` outcomes with durations and waits at random times in [start, end), several
    processes flushing at different moments; the successes per name."""
    rng = random.Random(seed)
    success: dict[str, int] = {}
    for i in range(n):
        r = recorders[i % len(recorders)]
        name = rng.choice(names)
        outcome = rng.choice(["success"] * 6 + ["failure", "retry", "revoked"])
        r.observe(name, rng.uniform(start, end), outcome,
                  None if outcome == "revoked" else rng.lognormvariate(-3, 1.5),
                  rng.expovariate(2.0) if rng.random() < 0.8 else None, "default",
                  retried=rng.random() < 0.1)
        if outcome == "success":
            success[name] = success.get(name, 0) + 1
        if i % 97 == 0:
            r.flush()
    for r in recorders:
        assert r.flush() is True
    return success


def reader(settings, client, blocks: bool) -> MetricsReader:
    m = MetricsReader(settings, client)
    if not blocks:
        m.blocks_from = lambda: None  # type: ignore[method-assign]  # minutes only
    return m


def assert_same(a: Merged, b: Merged) -> None:
    """Counters and histograms exactly equal, min/max equal, float sums to rounding."""
    assert a.counts == b.counts and a.hist == b.hist and a.whist == b.whist
    assert (a.dmin, a.dmax) == (b.dmin, b.dmax)
    assert math.isclose(a.dsum, b.dsum, rel_tol=1e-12)
    assert math.isclose(a.wsum, b.wsum, rel_tol=1e-12)


def test_one_hour_through_blocks_equals_through_minutes(settings, redis_client, recorders):
    """Three processes, three names, 1,500 outcomes over the last hour: the performance
    summary of each name and of the fleet is the same read through blocks (7-16 hashes) as
    through its 61 minutes; a fresh store marks blocks complete from 0."""
    procs = [manual(settings, recorders) for _ in range(3)]
    names = ["b.a", "b.b", "b.c:with:colons"]
    now = time.time()
    success = workload(procs, names, now - 3500, now, 1500, seed=11)
    assert redis_client.get(Keys(settings.key_prefix).blocks_since) == "0"
    end = time.time()
    with_blocks, minutes = reader(settings, redis_client, True), reader(settings, redis_client,
                                                                         False)
    assert with_blocks.blocks_from() == 0
    assert len(bucket_keys(with_blocks.keys, "b.a", end - 3600, end, 0)) <= 16
    for name in [*names, None]:
        one = [name] if name else None
        a, b = with_blocks.merged(one, end - 3600, end), minutes.merged(one, end - 3600, end)
        assert_same(a, b)
        assert a.counts["success"] == (success[name] if name else sum(success.values()))
        perf_a = with_blocks.performance(name, "1h")
        perf_b = minutes.performance(name, "1h")
        for k, v in perf_a.items():
            same = v == pytest.approx(perf_b[k], rel=1e-12) if isinstance(v, float) \
                else v == perf_b[k]
            assert same, (name, k, v, perf_b[k])


def old_version_wrote(client, keys: Keys) -> None:
    """Make the store look written by a version without blocks: no blocks, no marker."""
    gone = [*client.scan_iter(match=keys.name_block("*", 0)[:-2] + ":*", count=1000),
            *client.scan_iter(match=keys.fleet_block(0)[:-1] + "*", count=1000),
            keys.blocks_since]
    client.delete(*gone)


def test_upgrade_marker_keeps_counts_exact(settings, redis_client, recorders):
    """Minutes written before the upgrade have no blocks. The first flush after it marks blocks
    complete only from the next block; before that the reader takes minutes, so the hour's
    counts stay exact. With the marker earlier than the old writes they would not be: blocks
    would miss what the old version wrote."""
    keys = Keys(settings.key_prefix)
    now = time.time()
    switch = block_of(now) - 2 * BLOCK  # the upgrade, 20-30 minutes ago
    old = workload([manual(settings, recorders)], ["u.a"], now - 3000, switch, 300, seed=5)
    old_version_wrote(redis_client, keys)
    before = block_of(time.time())
    new = workload([manual(settings, recorders)], ["u.a"], switch, now, 200, seed=6)
    since = int(redis_client.get(keys.blocks_since))
    assert since in (before + BLOCK, block_of(time.time()) + BLOCK)
    want = old["u.a"] + new["u.a"]
    end = time.time()
    m = MetricsReader(settings, redis_client)
    assert m.blocks_from() == since
    assert all(w == MINUTE for w, _ in cover(end - 3600, end, since))  # no complete block yet
    assert m.performance("u.a", "1h")["success"] == want
    assert m.performance(None, "1h")["success"] == want

    # Time passes (here: the marker is moved to the upgrade): blocks from it on, minutes before.
    redis_client.set(keys.blocks_since, switch)
    m = MetricsReader(settings, redis_client)
    assert any(w == BLOCK for w, _ in cover(end - 3600, end, m.blocks_from()))
    assert m.performance("u.a", "1h")["success"] == want
    assert m.performance(None, "1h")["success"] == want

    # Control: a marker before the old writes would trust blocks that miss them.
    redis_client.set(keys.blocks_since, block_of(now - 3000))
    wrong = MetricsReader(settings, redis_client).performance("u.a", "1h")["success"]
    assert wrong < want


def test_blocks_since_is_set_once_and_cached(settings, redis_client, recorders):
    """The marker is set by the first chunk with buckets and never moved by later ones; a
    reader re-reads it only after BLOCKS_SINCE_TTL."""
    keys = Keys(settings.key_prefix)
    r = manual(settings, recorders)
    m = MetricsReader(settings, redis_client)
    assert m.blocks_from() is None
    r.observe("c.a", time.time(), "success", 0.01)
    assert r.flush() is True
    assert redis_client.get(keys.blocks_since) == "0"
    assert m.blocks_from() is None  # cached: minutes meanwhile, which is exact
    redis_client.set(keys.blocks_since, 1200)
    r.observe("c.a", time.time(), "success", 0.01)
    assert r.flush() is True
    assert redis_client.get(keys.blocks_since) == "1200"
    assert MetricsReader(settings, redis_client).blocks_from() == 1200


def test_a_chunk_applied_twice_adds_its_blocks_once(settings, redis_client):
    """A chunk retried after a lost reply (same writer, same number) adds its name and fleet
    blocks once, like its minute buckets; blocks expire with the minute buckets; a bucket first
    written without a duration and later with one has a TTL either way."""
    keys = Keys(settings.key_prefix)
    block = block_of(time.time()) - BLOCK
    timed = BucketDelta(counts={"success": 1, "done": 1, "h40": 1}, floats={"dsum": 0.5},
                        dmin=0.5, dmax=0.5)
    untimed = BucketDelta(counts={"revoked": 1})
    batch = Batch(minutes={("n", block + 60): untimed, ("n", block + 120): timed,
                           ("o", block + 540): timed})
    batch.rollup_hours()
    writer = StoreWriter(settings)
    chunks = Chunker(settings).seal(batch, time.time())
    for chunk in chunks:
        writer.apply(chunk)
        assert writer.apply(chunk) == 0  # already applied: nothing added
    assert redis_client.hgetall(keys.name_block("n", block)) == {
        "revoked": "1", "success": "1", "done": "1", "h40": "1", "dsum": "0.5", "dmin": "0.5",
        "dmax": "0.5"}
    fleet = redis_client.hgetall(keys.fleet_block(block))
    assert (fleet["success"], fleet["revoked"], fleet["h40"]) == ("2", "1", "2")
    later = Batch(minutes={("n", block + 60): timed})
    later.rollup_hours()
    writer.write(later)
    for key in (keys.name_block("n", block), keys.fleet_block(block),
                keys.minute_bucket("n", block + 60)):
        assert 0 < redis_client.ttl(key) <= settings.metrics_retention, key
    writer.client.close()


def test_task_types_page_over_a_day_folds_blocks_into_hourly_sparklines(settings, recorders):
    """A 24 h task-types page reads blocks at the window's ends (hours in the middle) and its
    sparkline, per hour, still adds up to the row's count; a 1 h page keeps per-minute
    sparklines (61 points)."""
    r = manual(settings, recorders)
    now = time.time()
    times = [now - 60 * k for k in range(0, 24 * 60 - 5, 37)]
    for ts in times:
        r.observe("d.a", ts, "success", 0.02)
    assert r.flush() is True
    m = CeleryMonitor(settings)
    try:
        reader = TaskTypesReader(m.metrics, m.redis, m.keys)
        assert m.metrics.blocks_from() == 0
        day = reader.page("24h")["items"][0]
        assert sum(day["spark"]) == day["count"] == len(times)
        assert len(day["spark"]) in (24, 25)
        hour = reader.page("1h")["items"][0]
        assert len(hour["spark"]) == 61 and sum(hour["spark"]) == hour["count"]
    finally:
        m.redis.close()
