"""Masking a list page item by item (``Redactor.redact_records``, ``serve/page_mask.py``) gives
exactly what masking the whole page gives (``Redactor.redact``, what every other response
body goes through): the cheap joined check may skip an item only when masking it would change
nothing — generated records with secrets in any string, secret keys (also configured ones that
are field names of the page), nesting, markup and unicode."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from celery_warden.redaction import MASK, Redactor
from celery_warden.serve.page_mask import masked_page

REDACTORS = [Redactor(), Redactor("queue,worker"), Redactor("items")]

#: Strings that pass one gate of the redactor or another, and ones that pass none.
TEXTS = st.one_of(
    st.text(max_size=30),
    st.sampled_from([
        "password=hunter2", "token: abc", "redis://u:pw@host/0", "Authorization: Bearer x.y",
        "<script>alert(1)</script> [i]", "tâche ünï 🚀", "api_key", "PASSWORD", "://", "@",
        "secretary", "max_tokens=3", "password\n=x", "pass\nword=x", "ΣΑΣ", "ς", "\u0130token=x",
    ]),
    st.lists(st.sampled_from(["password", "=", "x", "\n", "redis://", "u:p", "@h", " "]),
             max_size=6).map("".join),
)
KEYS = st.sampled_from(["task_id", "name", "state", "queue", "worker", "error", "message",
                        "password", "api_key", "type", "updated"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXTS)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)), max_leaves=8)
RECORDS = st.dictionaries(KEYS, VALUES, max_size=8)


@settings(max_examples=400, deadline=None)
@given(st.lists(RECORDS, max_size=6), st.sampled_from(REDACTORS))
def test_redact_records_equals_redact(records: list[dict[str, Any]], r: Redactor) -> None:
    assert r.redact_records(records) == r.redact(records)


@settings(max_examples=400, deadline=None)
@given(st.lists(TEXTS, min_size=1, max_size=6), st.sampled_from(REDACTORS))
def test_a_joined_text_that_may_not_change_means_no_piece_changes(pieces: list[str],
                                                                  r: Redactor) -> None:
    if not r.may_change("\n".join(pieces)):
        assert [r.redact_text(p) for p in pieces] == pieces


def test_an_item_with_a_secret_anywhere_is_masked_in_full() -> None:
    """The items that need it are masked, the others come back as they are."""
    r = Redactor("queue")
    plain = {"task_id": "a", "name": "t.add", "error": None, "retries": 0}
    secret_text = {"task_id": "b", "name": "t.x",
                   "error": {"type": "E", "message": "password=hunter2 <b>"}}
    secret_key = {"task_id": "c", "queue": "default"}
    out = r.redact_records([plain, secret_text, secret_key])
    assert out[0] is plain
    assert out[1]["error"]["message"] == f"password={MASK} <b>"
    assert out[2] == {"task_id": "c", "queue": MASK}


def test_masked_page_equals_the_whole_page_masked() -> None:
    page = {"items": [{"task_id": "a", "name": "token=abc"}, {"task_id": "b"}],
            "next_cursor": "1.5:password=x", "complete": False, "examined": 2}
    for r in REDACTORS:
        got = masked_page(r, page)
        assert got == r.redact(page) and list(got) == list(page)
