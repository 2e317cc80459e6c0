"""prune_store: index entries past their retention are removed and counted; nothing else is."""

from __future__ import annotations

from celery_warden.keys import Keys
from celery_warden.record.prune import prune_store

NOW = 1_800_000_000.0


def test_prune_removes_only_entries_past_retention(settings, redis_client):
    """recent/names/queues/workers lose exactly their expired members; stale worker hashes go."""
    keys = Keys(settings.key_prefix)
    ttl, keep = settings.task_ttl, settings.metrics_retention
    redis_client.zadd(keys.recent, {"old-1": NOW - ttl - 1, "old-2": NOW - ttl - 500,
                                    "fresh": NOW - ttl + 5, "new": NOW})
    redis_client.zadd(keys.names, {"gone.task": NOW - keep - 1, "live.task": NOW - keep + 60})
    redis_client.zadd(keys.queues, {"gone-q": NOW - keep - 10, "live-q": NOW - 1})
    redis_client.zadd(keys.workers, {"dead@h": NOW - keep - 1, "alive@h": NOW - 5})
    redis_client.hset(keys.worker("dead@h"), mapping={"state": "online"})
    redis_client.hset(keys.worker("alive@h"), mapping={"state": "online"})
    redis_client.hset(keys.task("fresh"), mapping={"state": "SENT"})

    removed = prune_store(settings, now=NOW)

    assert removed == {"recent": 2, "names": 1, "queues": 1, "workers": 1, "errors": 0}
    assert redis_client.zrange(keys.recent, 0, -1) == ["fresh", "new"]
    assert redis_client.zrange(keys.names, 0, -1) == ["live.task"]
    assert redis_client.zrange(keys.queues, 0, -1) == ["live-q"]
    assert redis_client.zrange(keys.workers, 0, -1) == ["alive@h"]
    assert redis_client.exists(keys.worker("dead@h")) == 0
    assert redis_client.hget(keys.worker("alive@h"), "state") == "online"
    assert redis_client.hget(keys.task("fresh"), "state") == "SENT"


def test_prune_on_empty_store_counts_zero(settings):
    """Nothing to prune: every count is 0 and no error is raised."""
    assert prune_store(settings, now=NOW) == {"recent": 0, "names": 0, "queues": 0, "workers": 0,
                                              "errors": 0}


def test_prune_is_idempotent(settings, redis_client):
    """A second run right after the first removes nothing more."""
    keys = Keys(settings.key_prefix)
    redis_client.zadd(keys.recent, {"old": NOW - settings.task_ttl - 1, "new": NOW})
    assert prune_store(settings, now=NOW)["recent"] == 1
    assert prune_store(settings, now=NOW)["recent"] == 0
    assert redis_client.zrange(keys.recent, 0, -1) == ["new"]


def test_prune_leaves_other_prefixes_alone(settings, redis_client, redis_url):
    """Pruning one fleet's prefix never touches another fleet's indexes."""
    from tests.conftest import make_settings
    from tests.support import delete_prefix

    other = make_settings(redis_url)
    try:
        other_keys = Keys(other.key_prefix)
        redis_client.zadd(other_keys.recent, {"ancient": 0})
        prune_store(settings, now=NOW)
        assert redis_client.zrange(other_keys.recent, 0, -1) == ["ancient"]
    finally:
        delete_prefix(redis_client, f"{other.key_prefix}:")
