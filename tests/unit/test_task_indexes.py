"""The search indexes the flush script writes (per task name, per non-success state, id
buckets): a record that changes state leaves the old state's index, the retention sweep and the
age trim take out what they delete, searches page through an index newest first examining only
its entries, and an id prefix is answered from the buckets exactly as a full scan would."""

from __future__ import annotations

import random
import time
import uuid

from celery_warden.keys import Keys
from celery_warden.read import task_search
from celery_warden.read.task_search import TaskFilter, TaskSearch, id_buckets
from celery_warden.record.order import RANK_STARTED, delivery_seq
from celery_warden.record.prune import prune_store
from celery_warden.record.retention import GRACE, sweep_retention
from celery_warden.redaction import Redactor
from tests.unit.test_task_search import T0, flush_records


def states_holding(client, keys: Keys, task_id: str) -> list[str]:
    """The state indexes that hold ``task_id``."""
    found = []
    for key in client.scan_iter(keys.task_state_index("*")):
        if client.zscore(key, task_id) is not None:
            found.append(key.rsplit(":", 1)[1])
    return found


def all_pages(search: TaskSearch, f: TaskFilter, limit: int) -> tuple[list[str], list[int]]:
    """Every id a cursor walk returns, and what each page examined."""
    seen: list[str] = []
    examined: list[int] = []
    cursor = None
    for _ in range(1000):
        page = search.page(f, cursor, limit=limit)
        seen += [i["task_id"] for i in page["items"]]
        examined.append(page["examined"])
        cursor = page["next_cursor"]
        if cursor is None:
            return seen, examined
    raise AssertionError("the cursor never ended")


def test_a_state_change_moves_the_record_between_state_indexes(settings, redis_client):
    """STARTED, then FAILURE: only the FAILURE index holds it; a late STARTED piece (lower rank)
    does not move it back; a retry's SUCCESS (a later delivery) takes it out of every state
    index. Every index entry has the record's P:recent score."""
    keys = Keys(settings.key_prefix)
    flush_records(settings, [("t-1", T0, {"state": "STARTED"})], rank=RANK_STARTED)
    assert states_holding(redis_client, keys, "t-1") == ["STARTED"]
    flush_records(settings, [("t-1", T0 + 1, {"state": "FAILURE"})])
    assert states_holding(redis_client, keys, "t-1") == ["FAILURE"]
    flush_records(settings, [("t-1", T0 + 2, {"state": "STARTED"})], rank=RANK_STARTED)
    assert redis_client.hget(keys.task("t-1"), "state") == "FAILURE"
    assert states_holding(redis_client, keys, "t-1") == ["FAILURE"]
    score = redis_client.zscore(keys.recent, "t-1")
    assert score == T0 + 2
    assert redis_client.zscore(keys.task_state_index("FAILURE"), "t-1") == score
    assert redis_client.zscore(keys.task_name_index("t.a"), "t-1") == score
    flush_records(settings, [("t-1", T0 + 3, {"state": "SUCCESS"})], seq=delivery_seq(1))
    assert states_holding(redis_client, keys, "t-1") == []
    search = TaskSearch(redis_client, keys, Redactor())
    assert search.page(TaskFilter(state="FAILURE"))["items"] == []
    assert [i["task_id"] for i in search.page(TaskFilter(name="t.a"))["items"]] == ["t-1"]


def test_one_chunk_of_many_records_moves_each_between_state_indexes(settings, redis_client):
    """The flush script groups index writes per key (one ZADD per name and state, one ZREM per
    state left): 2,500 records in one chunk (more than one ZADD's slice of 1,000 pairs), half
    of them moving from STARTED to FAILURE, half SENT to SUCCESS, end in exactly the indexes
    a record-by-record write puts them in, each at its own P:recent score."""
    keys = Keys(settings.key_prefix)
    ids = [f"g-{i:05d}" for i in range(2500)]
    half = len(ids) // 2
    flush_records(settings, [(t, T0 + i, {"state": "STARTED"}) for i, t in enumerate(ids[:half])],
                  rank=RANK_STARTED)
    flush_records(settings, [(t, T0 + i, {"state": "SENT"}) for i, t in enumerate(ids[half:])],
                  rank=1)
    assert redis_client.zcard(keys.task_state_index("STARTED")) == half
    flush_records(settings, [(t, T0 + 10_000 + i, {"state": "FAILURE" if i < half else "SUCCESS"})
                             for i, t in enumerate(ids)])
    assert redis_client.zcard(keys.task_state_index("STARTED")) == 0
    assert redis_client.zcard(keys.task_state_index("SENT")) == 0
    failed = redis_client.zrange(keys.task_state_index("FAILURE"), 0, -1, withscores=True)
    assert failed == [(t, T0 + 10_000 + i) for i, t in enumerate(ids[:half])]
    named = redis_client.zrange(keys.task_name_index("t.a"), 0, -1, withscores=True)
    assert named == [(t, T0 + 10_000 + i) for i, t in enumerate(ids)]
    assert states_holding(redis_client, keys, ids[-1]) == []


def test_pages_through_a_name_index_examine_only_its_entries(settings, redis_client):
    """300 records of one name among 1,500 others: pages of 40 return each once, newest first,
    and no page examines a record of another name; FAILURE&name picks the smaller index."""
    keys = Keys(settings.key_prefix)
    rows = [(f"r{i:05d}", T0 + i * 0.5, {"name": "t.mine" if i % 6 == 0 else f"t.o{i % 7}",
                                          "state": "FAILURE" if i % 60 == 0 else "SUCCESS"})
            for i in range(1800)]
    flush_records(settings, rows)
    search = TaskSearch(redis_client, keys, Redactor())
    mine = [r[0] for r in reversed(rows) if r[2]["name"] == "t.mine"]
    seen, examined = all_pages(search, TaskFilter(name="t.mine"), 40)
    assert seen == mine and len(mine) == 300
    assert sum(examined) == 300
    failed = [r[0] for r in reversed(rows) if r[2]["state"] == "FAILURE"]
    assert search.index(TaskFilter(name="t.mine", state="failure")) == \
        keys.task_state_index("FAILURE")
    seen, examined = all_pages(search, TaskFilter(name="t.mine", state="failure"), 7)
    assert seen == failed and sum(examined) == len(failed) == 30
    # An index entry whose record is gone (expired) is skipped.
    redis_client.delete(keys.task(mine[0]))
    assert search.page(TaskFilter(name="t.mine"), limit=1)["items"][0]["task_id"] == mine[1]


def test_an_id_prefix_is_answered_from_the_buckets_as_a_scan_would(settings, redis_client,
                                                                   monkeypatch):
    """Prefixes of 2 to 8 characters, hex or not, over uuids and custom ids: the same ids as
    checking every record, newest first, across pages; only matching ids are examined."""
    keys = Keys(settings.key_prefix)
    rng = random.Random(7)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(600)]
    ids += ["job-17", "job-170", "jobs", "abc-x", "ABCD1234", "ab"]
    flush_records(settings, [(task_id, T0 + n, {}) for n, task_id in enumerate(ids)])
    search = TaskSearch(redis_client, keys, Redactor())
    for prefix in ["ab", "abc", ids[5][:3], ids[5][:4], ids[5][:8], "job-1", "jo", "AB",
                   "abc-", "zz", "ab" + "0" * 30]:
        expected = [i for i in reversed(ids) if i.startswith(prefix)]
        seen, examined = all_pages(search, TaskFilter(id_prefix=prefix), 3)
        assert seen == expected, prefix
        assert sum(examined) == len(expected), prefix
    assert len(id_buckets(keys, "ab")) == 257 and id_buckets(keys, "a") == []
    # A prefix whose custom ids (the '~' bucket: here "abc-x" and "ab") match more than
    # MAX_PREFIX_MATCHES walks P:recent instead: the same ids, more records examined.
    monkeypatch.setattr(task_search, "MAX_PREFIX_MATCHES", 1)
    expected = [i for i in reversed(ids) if i.startswith("ab")]
    seen, examined = all_pages(search, TaskFilter(id_prefix="ab"), 3)
    assert seen == expected and sum(examined) == len(ids)
    monkeypatch.undo()
    assert id_buckets(keys, "job") == [keys.task_id_bucket("~")]
    # With another filter and a time range the buckets still answer.
    page = search.page(TaskFilter(id_prefix="job", since=T0 + 600, until=T0 + 601.5))
    assert [i["task_id"] for i in page["items"]] == ["job-170", "job-17"]


def test_the_retention_sweep_takes_deleted_and_expiring_records_out_of_the_indexes(
        settings_factory, redis_client):
    """Policy none: a plain success's record is deleted and leaves its name index and id bucket;
    policy recent: a shortened success leaves them when it is about to expire; a failure
    stays in its name's and state's index."""
    now = time.time()
    for policy in ("none", "recent"):
        settings = settings_factory(WARDEN_SUCCESS_RECORDS=policy, WARDEN_SUCCESS_TTL="60",
                                    WARDEN_SUCCESS_SAMPLE_RATE="0")
        keys = Keys(settings.key_prefix)
        plain = [str(uuid.uuid4()) for _ in range(20)]
        failed = str(uuid.uuid4())
        flush_records(settings, [(i, now, {"runtime": "0.01"}) for i in plain]
                      + [(failed, now, {"state": "FAILURE", "runtime": "0.01"})])
        name_index = keys.task_name_index("t.a")
        assert redis_client.zcard(name_index) == 21
        sweep_retention(settings, now=now + GRACE + 1)
        if policy == "recent":  # kept for the success TTL, then forgotten
            assert redis_client.zcard(name_index) == 21
            sweep_retention(settings, now=now + GRACE + 62)
        assert redis_client.zrange(name_index, 0, -1) == [failed]
        assert redis_client.zrange(keys.task_state_index("FAILURE"), 0, -1) == [failed]
        assert not any(redis_client.zscore(keys.task_id_bucket(i[:4]), i) is not None
                       for i in plain)
        assert redis_client.zscore(keys.task_id_bucket(failed[:4]), failed) == \
            redis_client.zscore(keys.recent, failed)


def test_every_index_is_trimmed_by_age(settings, redis_client):
    """A record updated longer ago than WARDEN_TASK_TTL leaves P:recent and its id bucket at the
    next flush, and its name and state indexes at the next age trim (prune or sweep)."""
    keys = Keys(settings.key_prefix)
    old = time.time() - settings.task_ttl - 100
    flush_records(settings, [("ab01-old", old, {"state": "FAILURE", "name": "t.gone"})])
    flush_records(settings, [("ab01-new", time.time(), {"state": "FAILURE", "name": "t.gone"})])
    assert redis_client.zscore(keys.recent, "ab01-old") is None
    assert redis_client.zrange(keys.task_id_bucket("ab01"), 0, -1) == ["ab01-new"]
    assert redis_client.zcard(keys.task_state_index("FAILURE")) == 2
    redis_client.zadd(keys.names, {"t.gone": time.time()})
    prune_store(settings)
    assert redis_client.zrange(keys.task_state_index("FAILURE"), 0, -1) == ["ab01-new"]
    assert redis_client.zrange(keys.task_name_index("t.gone"), 0, -1) == ["ab01-new"]


def test_a_prefix_merges_its_buckets_newest_first_with_ties_updates_and_a_budget(
        settings, redis_client):
    """The buckets of a prefix are merged by score as P:recent orders them: ties on the score
    across buckets go by id, a record written again moves to its new time, and a page that
    runs out of budget (another filter rejecting most) continues from its cursor."""
    keys = Keys(settings.key_prefix)
    rng = random.Random(5)
    ids = [f"ab{rng.getrandbits(16):04x}" + str(uuid.UUID(int=rng.getrandbits(128)))[6:]
           for _ in range(400)]
    rows = [(task_id, T0 + n // 4, {"state": "FAILURE" if n % 9 == 0 else "SUCCESS"})
            for n, task_id in enumerate(ids)]  # four ids per score
    flush_records(settings, rows)
    flush_records(settings, [(ids[3], T0 + 1000, {"state": "SUCCESS"})])  # written again
    search = TaskSearch(redis_client, keys, Redactor())
    for prefix in ("ab", ids[0][:3], ids[0][:4], ids[0][:6]):
        expected = [i for i in redis_client.zrevrange(keys.recent, 0, -1) if i.startswith(prefix)]
        assert expected[0] == ids[3] or not ids[3].startswith(prefix)
        seen, _ = all_pages(search, TaskFilter(id_prefix=prefix), 6)
        assert seen == expected, prefix
    failed = [i for i in redis_client.zrevrange(keys.recent, 0, -1)
              if redis_client.hget(keys.task(i), "state") == "FAILURE"]
    cursor, seen = None, []
    for _ in range(200):
        page = search.page(TaskFilter(id_prefix="ab", state="FAILURE"), cursor, limit=5,
                           budget=37)
        assert page["examined"] <= 37
        seen += [i["task_id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == failed and len(failed) == 45
