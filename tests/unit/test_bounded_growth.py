"""Core defect 8: every index Warden writes has a retention or a cap, nothing grows without end
because of what producers send, and a query cannot ask for millions of keys."""

from __future__ import annotations

import time
import uuid

import pytest

from celery_warden.dlq.groups import describe
from celery_warden.embedded import free_port
from celery_warden.keys import Keys
from celery_warden.read.monitor import CeleryMonitor
from celery_warden.record import chunks
from celery_warden.record.buffer import MAX_BUCKETS
from celery_warden.record.prune import prune_store
from celery_warden.record.recorder import Recorder
from celery_warden.record.store import StoreWriter
from celery_warden.services import redis_client


def manual(settings, made, **kw) -> Recorder:
    r = Recorder(settings, **kw)
    r.stop()
    made.append(r)
    return r


def fail(message: str) -> dict[str, str]:
    try:
        raise ValueError(message)
    except ValueError as exc:
        return describe(exc)


def test_error_group_index_forgets_groups_past_the_retention(settings, recorders,
                                                            redis_client):
    """A group last seen before WARDEN_METRICS_RETENTION leaves P:errors (its hash has
    expired by then); a recent one stays."""
    r = manual(settings, recorders)
    old = time.time() - settings.metrics_retention - 120
    r.error(fail("ancient failure"), "t.old", "id-old", old)
    r.error(fail("recent failure 'x'"), "t.new", "id-new", time.time())
    assert r.flush()
    keys = Keys(settings.key_prefix)
    prune_store(settings)
    members = redis_client.zrange(keys.error_groups, 0, -1)
    assert len(members) == 1
    assert redis_client.hget(keys.error_group(members[0]), "exc_type") == "ValueError"
    assert CeleryMonitor(settings).get_error_groups(10)[0]["task_names"] == {"t.new": 1}


def test_error_group_index_is_capped(settings, recorders, redis_client, monkeypatch):
    """Past MAX_ERROR_GROUPS the least recently seen groups are forgotten, with their hashes."""
    monkeypatch.setattr(chunks, "MAX_ERROR_GROUPS", 50)
    r = manual(settings, recorders)
    now = time.time()
    for i in range(80):
        r.error(fail(f"distinct failure kind {'x' * (i % 7)} {chr(65 + i % 26)}{i // 26}"),
                f"t.n{i}", f"id{i}", now - 80 + i)
    assert r.flush()
    keys = Keys(settings.key_prefix)
    assert redis_client.zcard(keys.error_groups) == 50
    kept = redis_client.zrange(keys.error_groups, 0, -1)
    groups = redis_client.keys(f"{keys.error_group('')}*")
    assert len(groups) == 50 and {g.rsplit(":", 1)[1] for g in groups} == set(kept)


def test_error_groups_carried_during_an_outage_stay_bounded(settings, recorders):
    """Redis unreachable across many flushes: the carried error groups stay within
    MAX_BUCKETS, and every group dropped is counted."""
    dead = f"redis://127.0.0.1:{free_port()}/0"
    r = manual(settings, recorders,
               writer_factory=lambda: StoreWriter(settings, client=redis_client(dead)))
    sample = fail("one failure")
    for flush in range(3):
        for i in range(MAX_BUCKETS - 1000):
            info = {**sample, "fingerprint": uuid.uuid4().hex[:16]}
            r.error(info, "t", f"{flush}-{i}", time.time())
        assert r.flush() is False
    carried = len(r.flusher._carry.errors) + sum(
        len(chunk.payload["errors"]) for chunk in r.flusher._sealed)
    assert len(r.flusher._carry.errors) <= MAX_BUCKETS
    assert carried + r.stats()["dropped"] == 3 * (MAX_BUCKETS - 1000), "each group kept or counted"


def test_windows_beyond_the_retention_are_refused(settings):
    """A performance window longer than the hourly roll-ups are kept, or an error-group window
    longer than the per-minute counts are kept, is a clear ValueError, not millions of reads."""
    monitor = CeleryMonitor(settings)
    with pytest.raises(ValueError, match="WARDEN_ROLLUP_RETENTION"):
        monitor.get_performance_stats("t", "100000d")
    assert monitor.get_performance_stats("t", "7d")["count"] == 0
    with pytest.raises(ValueError, match="WARDEN_METRICS_RETENTION"):
        monitor.get_error_groups(10, window="30d")
    assert monitor.get_error_groups(10, window="1d") == []
