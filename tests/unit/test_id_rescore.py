"""The one-time rescoring of id buckets an older version wrote at score 0 (record/id_rescore.py,
lua/id_rescore.lua): every such entry gets its P:recent score, one whose record is gone leaves
its bucket, the '~' bucket is left as it is, the work is split into bounded steps that end in
``done``, and an id prefix search lists the old entries last before and in order after."""

from __future__ import annotations

import random
import uuid

from celery_warden.keys import Keys
from celery_warden.read.task_search import TaskFilter, TaskSearch
from celery_warden.record import id_rescore
from celery_warden.record.id_rescore import rescore_id_buckets
from celery_warden.record.retention import sweep_retention
from celery_warden.redaction import Redactor
from tests.unit.test_task_indexes import all_pages
from tests.unit.test_task_search import T0, flush_records


def _as_an_older_version_wrote_them(client, keys: Keys, ids: list[str]) -> None:
    for task_id in ids:
        client.zadd(keys.task_id_bucket(task_id[:4]), {task_id: 0})


def test_old_entries_get_their_recent_score_in_bounded_steps(settings, redis_client,
                                                             monkeypatch):
    keys = Keys(settings.key_prefix)
    rng = random.Random(11)
    ids = ["ab" + str(uuid.UUID(int=rng.getrandbits(128), version=4))[2:] for _ in range(120)]
    flush_records(settings, [(task_id, T0 + n, {}) for n, task_id in enumerate(ids)])
    flush_records(settings, [("job-1", T0 + 500, {})])
    _as_an_older_version_wrote_them(redis_client, keys, ids)
    gone = "abcd0000-0000-4000-8000-000000000000"  # its record expired: not in P:recent
    redis_client.zadd(keys.task_id_bucket("abcd"), {gone: 0})
    search = TaskSearch(redis_client, keys, Redactor())
    newest_first = list(reversed(ids))
    # Before: the old entries come last, by id (all at score 0), and a range leaves them out.
    seen, _ = all_pages(search, TaskFilter(id_prefix="ab"), 7)
    assert sorted(seen) == sorted(ids) and seen != newest_first
    assert search.page(TaskFilter(id_prefix="ab", since=T0))["items"] == []

    monkeypatch.setattr(id_rescore, "ENTRIES_PER_CALL", 10)
    steps = 0
    while redis_client.get(keys.id_rescore) != "done":
        rescore_id_buckets(redis_client, keys, calls=1)
        steps += 1
        assert steps < 200
    assert steps >= 12  # 121 entries, at most ~10 a step (a bucket is never split)
    for task_id in ids:
        assert redis_client.zscore(keys.task_id_bucket(task_id[:4]), task_id) == \
            redis_client.zscore(keys.recent, task_id)
    assert redis_client.zscore(keys.task_id_bucket("abcd"), gone) is None
    assert redis_client.zscore(keys.task_id_bucket("~"), "job-1") == 0
    assert rescore_id_buckets(redis_client, keys) == 0  # done: nothing more, ever
    # After: newest first, and the range applies.
    seen, examined = all_pages(search, TaskFilter(id_prefix="ab"), 7)
    assert seen == newest_first and sum(examined) == len(ids)
    page = search.page(TaskFilter(id_prefix="ab", since=T0 + 100))
    assert [i["task_id"] for i in page["items"]] == newest_first[:20]


def test_the_retention_sweep_runs_it(settings, redis_client):
    keys = Keys(settings.key_prefix)
    flush_records(settings, [("abcd0001-x", T0, {})])
    _as_an_older_version_wrote_them(redis_client, keys, ["abcd0001-x"])
    sweep_retention(settings)
    assert redis_client.get(keys.id_rescore) == "done"
    assert redis_client.zscore(keys.task_id_bucket("abcd"), "abcd0001-x") == T0
