"""Task search over the task indexes: cursor pages see every record exactly once (ties on
the score included), filters match, the scan budget ends a page early with a cursor.

Records are written through the real flush script (which maintains the indexes), with chosen
update times."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aredis

from celery_warden.keys import Keys
from celery_warden.read.task_search import CursorError, TaskFilter, TaskSearch, parse_cursor
from celery_warden.record.batch import Batch, TaskDelta
from celery_warden.record.order import RANK_FINAL
from celery_warden.record.store import StoreWriter
from celery_warden.redaction import Redactor

#: Update times are offsets from here (recent enough that no index trims them by age).
T0 = time.time() - 3600


def flush_records(settings, rows, rank: int = RANK_FINAL, seq: int = 0) -> None:
    """Write (id, update time, fields) through the flush script; ``name`` is static, the rest
    attempt fields (state SUCCESS and name t.a unless given)."""
    batch = Batch()
    for task_id, ts, fields in rows:
        fields = {"name": "t.a", "state": "SUCCESS", **fields}
        name = fields.pop("name")
        batch.tasks[task_id] = TaskDelta(static={"name": name}, attempt=fields, seq=seq,
                                         rank=rank, updated=ts)
    StoreWriter(settings).write(batch)


def _records(settings, rows: list[tuple[str, float, dict[str, str]]]) -> None:
    flush_records(settings, [(i, T0 + ts, f) for i, ts, f in rows])


def test_pages_walk_every_record_once_with_ties(settings, redis_client):
    keys = Keys(settings.key_prefix)
    rows = [(f"id-{i:02d}", 1000.0 + (i // 4), {}) for i in range(13)]  # four per score
    _records(settings, rows)
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
    _records(settings, [
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
    assert ids(since=T0 + 15, until=T0 + 25) == ["a2"]


def test_the_scan_budget_ends_a_page_with_a_cursor(settings, redis_client):
    """A filter without an index of its own (queue) walks P:recent: the budget ends a page early
    with a cursor to go on from; the state's index finds the same record at once."""
    keys = Keys(settings.key_prefix)
    _records(settings, [(f"x{i}", float(i), {}) for i in range(30)])
    _records(settings, [("rare", 0.5, {"state": "FAILURE", "queue": "rare-q"})])
    search = TaskSearch(redis_client, keys, Redactor())
    page = search.page(TaskFilter(queue="rare-q"), budget=10)
    assert page["items"] == [] and page["complete"] is False and page["examined"] == 10
    found = []
    cursor = page["next_cursor"]
    while cursor:
        page = search.page(TaskFilter(queue="rare-q"), cursor, budget=10)
        found += [i["task_id"] for i in page["items"]]
        cursor = page["next_cursor"]
    assert found == ["rare"]
    page = search.page(TaskFilter(state="FAILURE"), budget=10)
    assert [i["task_id"] for i in page["items"]] == ["rare"] and page["examined"] == 1
    assert page["complete"] is True and page["next_cursor"] is None


@pytest.mark.parametrize("bad", ["", "abc", "nan:x", "1.5", "x:1"])
def test_a_cursor_not_handed_out_is_refused(bad):
    with pytest.raises(CursorError):
        parse_cursor(bad)


def test_the_asyncio_driver_reads_the_same_pages(settings, redis_client):
    """``apage`` (the API server's, on its asyncio client) runs the same steps as ``page``:
    equal pages for every kind of filter, also when the second page starts at a cursor."""
    keys = Keys(settings.key_prefix)
    _records(settings, [(f"{i:04x}-{i}", float(i), {
        "state": "FAILURE" if i % 3 == 0 else "SUCCESS", "name": f"t.{i % 2}",
        "queue": "q" if i % 5 else "other", "exc_type": "E", "exc_msg": f"msg {i}"})
        for i in range(40)])
    search = TaskSearch(redis_client, keys, Redactor())
    filters = [TaskFilter(), TaskFilter(state="failure"), TaskFilter(name="t.1"),
               TaskFilter(name="t.0", state="FAILURE"), TaskFilter(queue="other"),
               TaskFilter(id_prefix="00"), TaskFilter(id_prefix="0"), TaskFilter(q="MSG 1")]

    async def both() -> None:
        client = aredis.Redis.from_url(settings.redis_url, decode_responses=True)
        try:
            for f in filters:
                first = search.page(f, limit=4)
                assert await search.apage(client, f, limit=4) == first
                cursor = first["next_cursor"]
                if cursor:
                    assert await search.apage(client, f, cursor, limit=4) == \
                        search.page(f, cursor, limit=4)
        finally:
            await client.aclose()

    asyncio.run(both())
