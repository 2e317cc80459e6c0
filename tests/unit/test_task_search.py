"""Task search over the recent-task index: cursor pages see every record exactly once (ties on
the score included), filters match, the scan budget ends a page early with a cursor."""

from __future__ import annotations

import pytest

from celery_warden.keys import Keys
from celery_warden.read.task_search import CursorError, TaskFilter, TaskSearch, parse_cursor
from celery_warden.redaction import Redactor


def _records(client, keys: Keys, rows: list[tuple[str, float, dict[str, str]]]) -> None:
    for task_id, ts, fields in rows:
        client.hset(keys.task(task_id), mapping={"name": "t.a", "state": "SUCCESS", **fields})
        client.zadd(keys.recent, {task_id: ts})


def test_pages_walk_every_record_once_with_ties(settings, redis_client):
    keys = Keys(settings.key_prefix)
    rows = [(f"id-{i:02d}", 1000.0 + (i // 4), {}) for i in range(13)]  # four per score
    _records(redis_client, keys, rows)
    search = TaskSearch(redis_client, keys, Redactor())
    seen, cursor = [], None
    for _ in range(10):
        page = search.page(TaskFilter(), cursor, limit=3)
        seen += [i["task_id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(r[0] for r in rows) and len(seen) == len(set(seen))
    scores = [1000.0 + int(s[3:]) // 4 for s in seen]
    assert scores == sorted(scores, reverse=True)  # newest first


def test_filters_and_time_range(settings, redis_client):
    keys = Keys(settings.key_prefix)
    _records(redis_client, keys, [
        ("a1", 10.0, {"state": "FAILURE", "exc_type": "ValueError", "exc_msg": "boom [i]"}),
        ("a2", 20.0, {"queue": "q1", "worker": "w@h"}),
        ("b3", 30.0, {"name": "t.b", "args": '["needle"]'}),
    ])
    search = TaskSearch(redis_client, keys, Redactor())

    def ids(**kw):
        return [i["task_id"] for i in search.page(TaskFilter(**kw))["items"]]

    assert ids() == ["b3", "a2", "a1"]
    assert ids(state="failure") == ["a1"]
    assert ids(name="t.b") == ["b3"]
    assert ids(queue="q1") == ids(worker="w@h") == ["a2"]
    assert ids(id_prefix="a") == ["a2", "a1"]
    assert ids(q="[I]") == ["a1"] and ids(q="NEEDLE") == ["b3"]
    assert ids(since=15, until=25) == ["a2"]


def test_the_scan_budget_ends_a_page_with_a_cursor(settings, redis_client):
    keys = Keys(settings.key_prefix)
    _records(redis_client, keys, [(f"x{i}", float(i), {}) for i in range(30)])
    _records(redis_client, keys, [("rare", 0.5, {"state": "FAILURE"})])
    search = TaskSearch(redis_client, keys, Redactor())
    page = search.page(TaskFilter(state="FAILURE"), budget=10)
    assert page["items"] == [] and page["complete"] is False and page["examined"] == 10
    found = []
    cursor = page["next_cursor"]
    while cursor:
        page = search.page(TaskFilter(state="FAILURE"), cursor, budget=10)
        found += [i["task_id"] for i in page["items"]]
        cursor = page["next_cursor"]
    assert found == ["rare"]


@pytest.mark.parametrize("bad", ["", "abc", "nan:x", "1.5", "x:1"])
def test_a_cursor_not_handed_out_is_refused(bad):
    with pytest.raises(CursorError):
        parse_cursor(bad)
