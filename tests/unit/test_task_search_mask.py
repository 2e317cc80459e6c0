"""A search page's items masked from the script's replies (``read.task_search.masked_items``)
are exactly the items masked as every response body is (``Redactor.redact``): the joined gate
over the raw values may skip the mask only when it would change nothing — hostile values in
every field, secret keys configured among the item's own keys, markup and unicode."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from celery_warden.read.task_search import masked_items
from celery_warden.read.tasks import ITEM_KEYS, SUMMARY_FIELDS, task_summary
from celery_warden.redaction import MASK, Redactor

REDACTORS = [Redactor(), Redactor("queue"), Redactor("message"), Redactor("parent"),
             Redactor("error"), Redactor("name,dlq")]
VALUES = st.one_of(
    st.none(),
    st.text(max_size=20),
    st.sampled_from([
        "password=hunter2", "token: abc", "redis://u:pw@host/0", "Authorization: Bearer x.y",
        "<script>alert(1)</script> [i]", "tâche ünï 🚀", "api_key", "://", "@", "1795900325.5",
        "0", "12", "SUCCESS", "ValueError", "pass\nword=x", "\u0130token=x", "nan", "-1",
    ]),
)
ROW = st.lists(VALUES, min_size=len(SUMMARY_FIELDS), max_size=len(SUMMARY_FIELDS))


def _rows(ids: list[str], rows: list[list[str | None]]) -> list[str | None]:
    """The flat reply a page of these records comes back as: id, score, then the values."""
    flat: list[str | None] = []
    for task_id, values in zip(ids, rows, strict=True):
        flat += [task_id, "1795900325.5", *values]
    return flat


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(VALUES.filter(lambda v: v is not None), ROW), max_size=5),
       st.sampled_from(REDACTORS))
def test_masked_items_equal_the_items_masked(records: list[tuple[str, list[str | None]]],
                                             r: Redactor) -> None:
    ids = [task_id for task_id, _ in records]
    items = [task_summary(task_id, values, 1795900325.5, r) for task_id, values in records]
    expected = r.redact(items)
    assert masked_items(r, items, [_rows(ids, [v for _, v in records])]) == expected


def test_item_keys_are_every_key_an_item_has() -> None:
    r = Redactor()
    values: list[str | None] = ["FAILURE", "t.a", "default", "w@h", "1", "1.0", "1.0", "1.0",
                                "2.0", "1.0", "0.1", "ValueError", "boom", "d-1", "p", "r"]
    item = task_summary("a", values, 1.0, r)
    assert set(item) | set(item["error"]) == set(ITEM_KEYS)


def test_a_clean_page_comes_back_as_it_is_and_a_hostile_one_masked() -> None:
    r = Redactor()
    clean = ["SUCCESS", "t.add", "default", "w@h", "0", *(["1.0"] * 6), None, None, None,
             None, None]
    hostile = [*clean[:11], "ValueError", "password=hunter2", None, None, None]
    items = [task_summary("a", clean, 1.0, r)]
    assert masked_items(r, items, [_rows(["a"], [clean])]) is items
    # An error message is masked when the item is built; a raw value that would be masked is
    # masked in the item again, which changes nothing.
    items = [task_summary("b", hostile, 1.0, r)]
    got = masked_items(r, items, [_rows(["b"], [hostile])])
    assert got == items and got[0]["error"]["message"] == f"password={MASK}"
    # A configured key among the item's own: the items are masked whatever their values.
    rq = Redactor("queue")
    items = [task_summary("a", clean, 1.0, rq)]
    assert masked_items(rq, items, [_rows(["a"], [clean])])[0]["queue"] == MASK
